"""A Jetson's facts read from a fake root (release file, CUDA, cuDNN and TensorRT libraries), and the doctor's
lines about them: what to install from where, and nothing at all on a machine that is not a Jetson."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import pytest

from edgekit_runtime import doctor, findings, jetson
from edgekit_runtime.platform_facts import Engine, Platform, gather, parse_cpuinfo
from tests.runtime.boards import L4T_35_4, L4T_36_3, L4T_36_4, ORIN, jetson_root

ROOT = Path(__file__).resolve().parents[2]
BENCH_SCHEMA = json.loads((ROOT / "docs" / "bench.schema.json").read_text())
GPU = Engine("onnxruntime-gpu", "1.20.0", imports=True)
CPU = Engine("onnxruntime", "1.22.0", imports=True)
INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"  # NVIDIA's Jetson AI Lab: JetPack 6, CUDA 12.6
PIP_GPU = f"pip install --extra-index-url {INDEX} 'onnxruntime-gpu>=1.20'"


def orin(**changes) -> Platform:
    """An Orin Nano on JetPack 6.1 with NVIDIA's onnxruntime-gpu and JetPack's libraries."""
    info = parse_cpuinfo(ORIN)
    facts = Platform(
        machine="aarch64",
        python="3.10.12",
        python_bits=64,
        glibc="2.35",
        cpu_flags=info.flags,
        cores=6,
        cpu=info.cpu,
        board="NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
        os="Ubuntu 22.04.5 LTS",
        memory_bytes=8 << 30,
        engines=(GPU,),
        numpy="1.26.4",
        l4t="36.4.0",
        cuda="12.6.68",
        cudnn="9.3.0",
        tensorrt="10.3.0",
    )
    return dataclasses.replace(facts, **changes)


def levels(found, level):
    return [f.text for f in found if f.level == level]


@pytest.mark.parametrize(
    ("text", "l4t"),
    [
        (L4T_36_4, "36.4.0"),
        (L4T_36_3, "36.3.0"),
        (L4T_35_4, "35.4.1"),
        ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: x\n", "32.7.1"),
        ("# R36 (release), REVISION: 4, GCID: 1\n", "36.4"),
        ("R36.4.0\n", None),
        ("", None),
    ],
)
def test_the_release_file_is_read_as_l4t_major_and_revision(text, l4t):
    assert jetson.parse_release(text) == l4t


def test_each_release_is_its_jetpack_cuda_and_wheel_index():
    releases = ("36.4.0", "36.3.0", "35.4.1", "34.1.1", "32.7.1", "38.2.0")
    assert [jetson.jetpack(r) for r in releases] == ["6", "6", "5", "5", "4", "7"]
    assert jetson.jetpack("99.1.0") is None
    assert jetson.jetpack("unknown") is None
    assert jetson.jetpack(None) is None
    cudas = [jetson.cuda_expected(r) for r in ("36.4.3", "36.3.0", "35.4.1", "32.7.1")]
    assert cudas == ["12.6", "12.2", "11.4", "10.2"]
    # NVIDIA's jp6/cu126 wheels need JetPack 6.1's CUDA 12.6: not JetPack 6.0 (R36.3) nor 5
    assert jetson.wheel_index("36.4.0") == jetson.wheel_index("36.4.4") == INDEX
    assert jetson.wheel_index("36.3.0") is None
    assert jetson.wheel_index("35.4.1") is None


def test_a_jetsons_libraries_are_found_through_jetpacks_links(tmp_path):
    software = jetson.read(jetson_root(tmp_path))
    assert software == jetson.Software(l4t="36.4.0", cuda="12.6.68", cudnn="9.3.0", tensorrt="10.3.0")


def test_missing_libraries_are_none(tmp_path):
    software = jetson.read(jetson_root(tmp_path, L4T_35_4, cuda=None, cudnn=None, tensorrt=None))
    assert software == jetson.Software(l4t="35.4.1")


def test_not_a_jetson_means_nothing_else_is_looked_for(tmp_path):
    root = jetson_root(tmp_path)
    (root / "etc" / "nv_tegra_release").unlink()  # an x86 box with CUDA installed, say
    assert jetson.read(root) == jetson.Software()


def test_a_release_file_that_cannot_be_read_is_still_a_jetson(tmp_path):
    root = jetson_root(tmp_path, "garbled\n")
    assert jetson.read(root).l4t == "unknown"
    (note,) = levels(jetson.findings(orin(l4t="unknown")), "note")
    assert note.startswith("/etc/nv_tegra_release does not read like a Jetson Linux release")
    (note,) = levels(jetson.findings(orin(l4t="99.1.0")), "note")
    assert "L4T release '99.1.0', which this doctor does not know" in note


def test_the_newest_of_two_toolkits_and_unversioned_or_dangling_libraries(tmp_path):
    folder = tmp_path / "usr" / "local" / "cuda-12.2" / "lib64"
    folder.mkdir(parents=True)
    (folder / "libcudart.so.12.2.140").write_bytes(b"")
    newer = tmp_path / "usr" / "local" / "cuda-12.6" / "lib64"
    newer.mkdir(parents=True)
    (newer / "libcudart.so.12.6.68").write_bytes(b"")
    assert jetson.library_version(tmp_path, jetson.CUDA_DIRS, "libcudart.so") == "12.6.68"
    libs = tmp_path / "usr" / "lib" / "aarch64-linux-gnu"
    libs.mkdir(parents=True)
    (libs / "libnvinfer.so").write_bytes(b"")  # only the development link's name, no version
    (libs / "libcudnn.so.9").symlink_to("libcudnn.so.9.3.0")  # points at nothing
    assert jetson.library_version(tmp_path, jetson.LIB_DIRS, "libnvinfer.so") == ""
    assert jetson.library_version(tmp_path, jetson.LIB_DIRS, "libcudnn.so") is None
    assert jetson.library_version(tmp_path, jetson.LIB_DIRS, "libnvinfer_plugin.so") is None


def test_gather_carries_the_jetson_facts_into_the_platform_and_its_json(tmp_path):
    root = jetson_root(tmp_path)
    (root / "proc").mkdir()
    (root / "proc" / "cpuinfo").write_text(ORIN)
    facts = gather(probe=False, root=root)
    assert (facts.l4t, facts.jetpack, facts.cuda, facts.cudnn, facts.tensorrt) == (
        "36.4.0",
        "6",
        "12.6.68",
        "9.3.0",
        "10.3.0",
    )
    assert facts.describe().endswith(", L4T 36.4.0 (JetPack 6)")
    doc = facts.to_json()
    assert {k: doc[k] for k in ("l4t", "jetpack", "cuda", "cudnn", "tensorrt")} == {
        "l4t": "36.4.0",
        "jetpack": "6",
        "cuda": "12.6.68",
        "cudnn": "9.3.0",
        "tensorrt": "10.3.0",
    }
    # bench results carry these facts: the schema the host reads them with takes them
    schema = {"$defs": BENCH_SCHEMA["$defs"], "$ref": "#/$defs/platform"}
    jsonschema.validate(doc, schema)
    jsonschema.validate(gather(probe=False, root=tmp_path / "not-a-jetson").to_json(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc | {"l4t": 36.4}, schema)


def test_nothing_at_all_on_a_machine_that_is_not_a_jetson(tmp_path):
    assert jetson.findings(orin(l4t=None)) == []
    pi = gather(probe=False, root=tmp_path)
    assert (pi.l4t, pi.cuda, pi.tensorrt, pi.jetpack) == (None, None, None, None)
    assert jetson.findings(pi) == []
    assert "L4T" not in pi.describe()


def test_an_orin_on_jetpack_6_with_nvidias_build_and_its_libraries_is_all_ok():
    found = jetson.findings(orin())
    assert levels(found, "problem") == []
    assert levels(found, "note") == []
    ok = levels(found, "ok")
    assert ok[0] == f"Jetson Linux L4T 36.4.0: JetPack 6 (CUDA 12.6); NVIDIA's onnxruntime-gpu for it: {INDEX}"
    assert "onnxruntime-gpu 1.20.0: NVIDIA's GPU build (TensorRT, CUDA, then the CPU)" in ok
    assert "CUDA runtime 12.6.68 (libcudart)" in ok
    assert "cuDNN 9.3.0 (libcudnn)" in ok
    assert any(t.startswith("TensorRT 10.3.0 (libnvinfer)") and "STATE_DIR/trt-cache" in t for t in ok)


def test_pypis_cpu_onnxruntime_on_jetpack_6_gets_the_exact_pip_command():
    (note,) = levels(jetson.findings(orin(engines=(CPU,))), "note")
    assert note.startswith("onnxruntime 1.22.0 is PyPI's CPU build: the GPU is not used")
    assert note.endswith(f"pip uninstall -y onnxruntime, then {PIP_GPU}")
    # no engine at all: the doctor's own problem says so; this adds where the GPU build comes from
    assert levels(jetson.findings(orin(engines=())), "note") == [f"for the GPU: {PIP_GPU}"]


def test_both_builds_installed_is_a_problem_because_they_share_one_module():
    (problem,) = levels(jetson.findings(orin(engines=(CPU, GPU))), "problem")
    assert "onnxruntime 1.22.0 (PyPI's CPU build) and onnxruntime-gpu 1.20.0 are both installed" in problem
    assert problem.endswith(f"run pip uninstall -y onnxruntime onnxruntime-gpu, then {PIP_GPU}")


def test_the_gpu_build_without_cuda_is_a_problem_and_without_tensorrt_a_note():
    found = jetson.findings(orin(cuda=None, cudnn=None, tensorrt=None))
    (problem,) = levels(found, "problem")
    assert problem.startswith("no CUDA runtime (libcudart.so) under /usr/local/cuda*/lib64")
    assert problem.endswith("install JetPack's CUDA (sudo apt install nvidia-jetpack)")
    notes = levels(found, "note")
    assert any(t.startswith("no cuDNN (libcudnn.so) in /usr/lib/aarch64-linux-gnu") for t in notes)
    assert any(t.startswith("no TensorRT (libnvinfer.so)") and "CUDA and the CPU still run" in t for t in notes)
    # with only the CPU build, a missing CUDA is worth a note, not a problem
    assert levels(jetson.findings(orin(engines=(CPU,), cuda=None)), "problem") == []


def test_a_library_the_gpu_build_cannot_load_is_named_with_where_it_comes_from():
    error = "ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory"
    broken = dataclasses.replace(GPU, imports=False, import_error=error)
    notes = levels(jetson.findings(orin(engines=(broken,), cudnn=None)), "note")
    assert any(t.startswith("libcudnn.so.9 is missing for onnxruntime-gpu: it comes with JetPack") for t in notes)


def test_jetpack_6_0_and_5_are_told_the_gpu_build_needs_jetpack_6_1():
    (six_oh,) = levels(jetson.findings(orin(l4t="36.3.0", engines=(CPU,), cuda="12.2.140")), "note")[:1]
    assert six_oh.startswith("Jetson Linux L4T 36.3.0: JetPack 6 (CUDA 12.2): NVIDIA's onnxruntime-gpu wheels")
    assert six_oh.endswith("upgrade to JetPack 6.1 or newer (L4T R36.4)")
    five = levels(jetson.findings(orin(l4t="35.4.1", engines=(CPU,), cuda="11.4.315")), "note")
    assert five[0].startswith("Jetson Linux L4T 35.4.1: JetPack 5 (CUDA 11.4): NVIDIA publishes no onnxruntime-gpu")
    assert "Python 3.10+" in five[0]
    # there is no index to point at: the CPU build's note does not invent a command
    assert five[1] == "onnxruntime 1.22.0 is PyPI's CPU build: the GPU is not used"


def test_every_problem_is_one_line_saying_what_to_do():
    cases = [orin(engines=(CPU, GPU)), orin(cuda=None), orin(l4t="35.4.1", engines=(CPU, GPU), cuda=None)]
    for case in cases:
        problems = levels(jetson.findings(case), "problem")
        assert problems, case
        for text in problems:
            assert "\n" not in text
            assert re.search(r": (pip install|use|install|run|reinstall)", text), text


def test_the_minimum_gpu_build_is_the_doctors_and_the_finding_type_is_shared():
    assert doctor.MIN_VERSIONS["onnxruntime-gpu"] == jetson.ORT_GPU_MIN
    assert doctor.Finding is findings.Finding


def test_the_doctor_reports_the_jetson_lines():
    # doctor.diagnose calls jetson.findings: a Jetson's lines are in the doctor's answer, and nowhere else
    found = doctor.diagnose(orin(engines=(CPU,)))
    assert any(t.startswith("Jetson Linux L4T 36.4.0: JetPack 6") for t in levels(found, "ok"))
    assert any(PIP_GPU in t for t in levels(found, "note"))
    assert not any("L4T" in f.text for f in doctor.diagnose(orin(l4t=None)))
