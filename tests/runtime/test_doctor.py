"""``edgekit-runtime doctor``: the facts of a Pi 4, a Pi 5, 32-bit Pi OS and a Jetson, judged; and the real command."""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit_runtime import doctor, targets
from edgekit_runtime.cli import main
from edgekit_runtime.cli.config_file import tomllib
from edgekit_runtime.doctor import KNOWN_BAD, MIN_VERSIONS, diagnose, report
from edgekit_runtime.platform_facts import Engine, Platform, parse_cpuinfo
from tests.runtime.boards import ORIN, PI4_32, PI4_64, PI5, X86

ROOT = Path(__file__).resolve().parents[2]

ORT = Engine("onnxruntime", "1.22.0", imports=True)
LITERT = Engine("ai-edge-litert", "2.3.0", imports=True)
TFLITE = Engine("tflite-runtime", "2.14.0", imports=True)


def device(cpuinfo: str, *, machine: str = "aarch64", bits: int = 64, **changes) -> Platform:
    info = parse_cpuinfo(cpuinfo)
    facts = Platform(
        machine=machine,
        python="3.11.2",
        python_bits=bits,
        glibc="2.36",
        cpu_flags=info.flags,
        cores=4,
        cpu=info.cpu,
        board=info.board,
        os="Debian GNU/Linux 12 (bookworm)",
        memory_bytes=4 << 30,
        engines=(ORT,),
        numpy="2.2.6",
    )
    return dataclasses.replace(facts, **changes)


def levels(findings, level):
    return [f.text for f in findings if f.level == level]


def test_cpuinfo_of_each_board():
    pi4 = parse_cpuinfo(PI4_64)
    assert (pi4.cpu, pi4.board) == ("Cortex-A72", "Raspberry Pi 4 Model B Rev 1.4")
    assert "asimd" in pi4.flags
    assert "asimddp" not in pi4.flags
    assert parse_cpuinfo(PI4_32).cpu == "Cortex-A72"  # not "ARMv7 Processor rev 3 (v7l)"
    assert "neon" in parse_cpuinfo(PI4_32).flags
    assert parse_cpuinfo(PI5).cpu == "Cortex-A76"
    assert parse_cpuinfo(ORIN).cpu == "Cortex-A78AE"
    x86 = parse_cpuinfo(X86)
    assert (x86.cpu, x86.board) == ("Intel(R) Xeon(R) CPU @ 2.20GHz", None)  # x86's "model : 85" is no board
    assert {"avx2", "fma"} <= x86.flags


def test_a_pi4_with_a_good_onnxruntime_is_fine_but_told_int8_may_not_pay():
    pi4 = device(PI4_64)
    found = diagnose(pi4)
    assert levels(found, "problem") == []
    assert any("onnxruntime 1.22.0 imports" in t for t in levels(found, "ok"))
    (note,) = levels(found, "note")
    assert "no 8-bit dot-product instructions (asimddp" in note
    assert "edgekit-runtime bench" in note
    assert pi4.simd == "NEON"
    assert not pi4.dot_product


def test_a_pi5_has_dot_product():
    found = diagnose(device(PI5))
    assert levels(found, "problem") == []
    assert levels(found, "note") == []
    assert any("(asimddp)" in t for t in levels(found, "ok"))


def test_onnxruntime_1_21_0_on_a_pi4_is_a_known_crash_with_the_threads_and_the_fix():
    pi4 = device(PI4_64, engines=(Engine("onnxruntime", "1.21.0", imports=False, import_error="killed by SIGILL"),))
    (problem,) = levels(diagnose(pi4), "problem")
    assert "onnxruntime 1.21.0 dies with an illegal instruction" in problem
    assert "microsoft/onnxruntime#23957" in problem
    assert problem.endswith(": pip install 'onnxruntime>=1.22' (or 'onnxruntime==1.20.1')")


def test_known_bad_versions_are_arm_only():
    x86 = device(X86, machine="x86_64", engines=(Engine("onnxruntime", "1.21.0", imports=True),))
    assert levels(diagnose(x86), "problem") == []
    for bad in KNOWN_BAD:
        assert bad.sources, bad
        assert bad.fix.startswith("pip install"), bad


def test_an_unknown_illegal_instruction_is_a_problem_with_a_way_out():
    pi4 = device(
        PI4_64,
        engines=(
            Engine("onnxruntime", "1.40.0", imports=False, import_error="killed by SIGILL (illegal instruction)"),
        ),
    )
    (problem,) = levels(diagnose(pi4), "problem")
    assert "cannot be imported (killed by SIGILL (illegal instruction))" in problem
    assert "pip install 'onnxruntime!=1.40.0'" in problem


def test_an_engine_that_cannot_map_its_library_is_told_about_the_memory_limit():
    error = "ImportError: /x/onnxruntime_pybind11_state.so: failed to map segment from shared object"
    capped = device(PI4_64, engines=(Engine("onnxruntime", "1.22.0", imports=False, import_error=error),))
    (problem,) = levels(diagnose(capped), "problem")
    assert problem.endswith("may not map enough memory (ulimit -v, prlimit --as): raise the limit")


def test_an_engine_older_than_the_runtime_supports():
    old = device(PI4_64, engines=(Engine("onnxruntime", "1.19.2", imports=True),))
    (problem,) = levels(diagnose(old), "problem")
    assert problem == "onnxruntime 1.19.2 is older than the runtime supports: pip install -U 'onnxruntime>=1.20'"


def test_32_bit_pi_os_without_an_engine_is_told_about_the_missing_wheel():
    # Pi OS 32-bit on a Pi 4 boots a 64-bit kernel: uname says aarch64, the Python is 32-bit
    pi = device(PI4_32, machine="aarch64", bits=32, engines=())
    assert pi.arch == "armv7l"
    assert pi.is_arm32
    found = diagnose(pi)
    (problem,) = levels(found, "problem")
    assert "32-bit Arm userland (armv7l): there is no onnxruntime wheel for it" in problem
    assert "64-bit Raspberry Pi OS" in problem
    assert "LiteRT" in problem
    assert "armv7l userland on an aarch64 kernel" in pi.describe()


def test_32_bit_pi_os_with_tflite_runtime_runs_tflite_bundles():
    pi = device(PI4_32, machine="armv7l", bits=32, engines=(TFLITE,), numpy="1.26.4")
    found = diagnose(pi)
    assert levels(found, "problem") == []
    assert any("only .tflite bundles run here" in t for t in levels(found, "note"))


def test_tflite_runtime_with_numpy_2_cannot_load_models():
    pi = device(PI4_32, machine="armv7l", bits=32, engines=(TFLITE,), numpy="2.1.0")
    (problem,) = levels(diagnose(pi), "problem")
    assert "built against NumPy 1" in problem
    assert problem.endswith("pip install 'numpy<2'")
    # with ai-edge-litert there too, the runtime uses that one first: only a note
    both = device(PI5, engines=(LITERT, TFLITE), numpy="2.1.0")
    assert levels(diagnose(both), "problem") == []
    assert any("NumPy 1" in t for t in levels(diagnose(both), "note"))


def test_armv6_cannot_run_any_engine():
    zero = device(PI4_32, machine="armv6l", bits=32, engines=())
    assert any("armv6" in t for t in levels(diagnose(zero), "problem"))


def test_no_engine_at_all():
    (problem,) = levels(diagnose(device(PI5, engines=(Engine("onnxruntime", None),))), "problem")
    assert "pip install 'edgekit-runtime[onnx]'" in problem


def test_python_and_libc():
    assert any("Python 3.9.2 is older" in t for t in levels(diagnose(device(PI5, python="3.9.2")), "problem"))
    assert any("no glibc" in t for t in levels(diagnose(device(PI5, glibc=None)), "problem"))
    old = levels(diagnose(device(PI5, glibc="2.27")), "note")
    assert any("glibc 2.27 is older than onnxruntime's newest aarch64 wheels need" in t for t in old)


def test_a_jetson_orin_with_nvidias_onnxruntime_gpu():
    orin = device(ORIN, engines=(Engine("onnxruntime-gpu", "1.20.0", imports=True),), board="NVIDIA Jetson Orin Nano")
    found = diagnose(orin)
    assert levels(found, "problem") == []
    assert any("onnxruntime-gpu 1.20.0 imports" in t for t in levels(found, "ok"))


def test_avx2_without_vnni_is_told_about_reduce_range():
    notes = levels(diagnose(device(X86, machine="x86_64")), "note")
    assert any("--reduce-range" in t for t in notes)


def test_every_problem_is_one_line_saying_what_to_do():
    cases = [
        device(PI4_64, engines=(Engine("onnxruntime", "1.21.0"),)),
        device(PI4_32, machine="armv7l", bits=32, engines=()),
        device(PI5, engines=(), glibc=None, python="3.8.10"),
        device(PI4_32, machine="armv7l", bits=32, engines=(TFLITE,), numpy="2.0.0"),
    ]
    for case in cases:
        problems = levels(diagnose(case), "problem")
        assert problems, case
        for text in problems:
            assert "\n" not in text
            assert re.search(r": (pip install|use|install|run|reinstall)", text), text


def test_the_minimum_versions_are_the_runtimes_extras():
    project = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]
    extras = {r.split(">=")[0]: r.split(">=")[1] for reqs in project["optional-dependencies"].values() for r in reqs}
    assert {k: v for k, v in MIN_VERSIONS.items() if k in extras} == extras
    assert project["requires-python"] == ">=" + ".".join(map(str, doctor.MIN_PYTHON))


def test_the_report_lists_facts_then_findings_then_the_verdict():
    pi4 = device(PI4_64, engines=(Engine("onnxruntime", "1.21.0"), Engine("ai-edge-litert", None)))
    text = report(pi4, diagnose(pi4))
    lines = text.splitlines()
    assert lines[0].startswith("platform  aarch64, Raspberry Pi 4 Model B Rev 1.4, Cortex-A72, 4 cores")
    assert "engines   onnxruntime 1.21.0, ai-edge-litert not installed; numpy 2.2.6" in lines
    assert any(line.startswith("problem  onnxruntime 1.21.0") for line in lines)
    assert lines[-1] == "1 problem: fix it as the line says"


def test_the_command_exits_1_on_a_problem(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "gather", lambda **_: device(PI4_64, engines=(Engine("onnxruntime", "1.21.0"),)))
    assert main(["doctor"]) == 1
    assert "problem  onnxruntime 1.21.0" in capsys.readouterr().out
    monkeypatch.setattr(doctor, "gather", lambda **_: device(PI5))
    assert main(["doctor", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["platform"]["cpu"] == "Cortex-A76"
    assert doc["platform"]["dot_product"] is True
    assert {f["level"] for f in doc["findings"]} == {"ok"}


def test_the_real_command_on_this_machine():
    done = subprocess.run(
        [sys.executable, "-m", "edgekit_runtime.cli", "doctor"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout
    assert lines[0].startswith("platform  ")
    assert "onnxruntime" in next(line for line in lines if line.startswith("engines"))
    assert any(re.match(r"ok +onnxruntime \S+ imports$", line) for line in lines), done.stdout
    assert lines[-1] == "no problems: this device can run bundles"


def test_the_profile_that_fits_is_named():
    assert "profile rpi4 fits this device: edgekit compress --target rpi4" in levels(diagnose(device(PI4_64)), "ok")
    assert "profile rpi5 fits this device: edgekit compress --target rpi5" in levels(diagnose(device(PI5)), "ok")
    assert not [t for t in levels(diagnose(device(PI4_32, machine="armv7l", bits=32)), "ok") if "profile" in t]


def test_a_pi5_profile_on_a_pi4_is_a_problem_that_names_the_right_target():
    (problem,) = levels(diagnose(device(PI4_64), targets.get("rpi5")), "problem")
    assert problem == (
        "--target rpi5: this CPU lacks asimddp, asimdhp, fphp, which rpi5 assumes: use --target rpi4 (compress and "
        "serve)"
    )
    fine = levels(diagnose(device(PI4_64), targets.get("rpi4")), "ok")
    assert "--target rpi4: this device has what the profile assumes" in fine
    two = diagnose(device(PI4_64, cores=2), targets.get("rpi4"))
    assert levels(two, "note")[-1] == "--target rpi4: 2 cores here, so 2 threads, not rpi4's 4"
    assert not levels(two, "problem")


def test_doctor_target_on_this_machine(capsys):
    guess = targets.guess(platform.machine(), None)
    name = guess.name if guess is not None else "rpi4"
    main(["doctor", "--no-probe", "--target", name])
    assert [line for line in capsys.readouterr().out.splitlines() if f"--target {name}: " in line]


def test_doctor_refuses_an_unknown_target(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--target", "nano"])
    assert exited.value.code == 2
    assert "error: argument --target: 'nano' is not a target: use one of rpi4" in capsys.readouterr().err
