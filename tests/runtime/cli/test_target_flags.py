"""``--target`` and ``--providers``: the engine settings they make, and the providers a session gets.

The Jetson's providers are not in this machine's onnxruntime build: a stand-in module behind the backend's
``_ort`` seam plays a build that has them, and the real CPU build shows the fallback.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import click
import pytest

from edgekit_runtime import targets
from edgekit_runtime.backends import BackendSettings, onnxruntime, tensorrt_options
from edgekit_runtime.cli import target_flags
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.platform_facts import Platform, parse_cpuinfo
from tests.runtime.boards import PI4_64, PI5

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"
JETSON = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def args(**given) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{"target": None, "threads": None, "concurrency": None, "providers": None} | given)


def test_provider_names_short_and_long():
    assert target_flags.providers("tensorrt, CUDA,cpu") == JETSON
    assert target_flags.providers("CUDAExecutionProvider") == ("CUDAExecutionProvider",)
    with pytest.raises(click.BadParameter, match="'gpu' is not an execution provider: use tensorrt, cuda"):
        target_flags.providers("gpu")
    with pytest.raises(click.BadParameter, match="no provider named"):
        target_flags.providers(" , ")


def test_a_target_name_or_the_parsers_complaint():
    assert target_flags.target("rpi5") is targets.get("rpi5")
    with pytest.raises(click.BadParameter, match="'pi4' is not a target: use one of rpi4, rpi5"):
        target_flags.target("pi4")


def test_without_a_target_a_call_per_core_with_one_thread_each(tmp_path):
    assert target_flags.default_concurrency(args(), 4) == 4
    settings = target_flags.engine_settings(args(), 4, 4, tmp_path)
    assert (settings.threads, settings.providers, settings.prefer) == (1, None, None)


def test_a_target_gives_one_call_all_its_threads_cut_to_the_cores_here(tmp_path):
    pi = targets.get("rpi4")
    assert target_flags.default_concurrency(args(target=pi), 4) == 1
    assert target_flags.engine_settings(args(target=pi), 1, 4, tmp_path).threads == 4
    assert target_flags.engine_settings(args(target=pi), 1, 2, tmp_path).threads == 2
    assert target_flags.default_concurrency(args(target=pi), 8) == 2  # a bigger machine: two calls of four
    assert target_flags.default_concurrency(args(target=pi, concurrency=3), 8) == 3
    assert target_flags.engine_settings(args(target=pi, threads=3), 1, 4, tmp_path).threads == 3


def test_the_jetson_target_prefers_the_gpu_and_caches_tensorrt_engines_in_the_state_dir(tmp_path):
    settings = target_flags.engine_settings(args(target=targets.get("jetson-orin")), 1, 6, tmp_path)
    assert settings.prefer == JETSON
    assert settings.providers is None
    trt = settings.provider_options["TensorrtExecutionProvider"]
    assert trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(tmp_path / "trt-cache")
    assert trt["trt_timing_cache_path"] == str(tmp_path / "trt-cache")


@pytest.mark.parametrize(
    ("available", "chosen"),
    [
        (list(JETSON), list(JETSON)),  # onnxruntime-gpu on a Jetson
        (["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        (["CPUExecutionProvider"], ["CPUExecutionProvider"]),  # PyPI's CPU wheel: the fallback
        (["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ],
)
def test_preferred_providers_are_used_where_present_and_the_cpu_always(available, chosen):
    assert onnxruntime.choose_providers(BackendSettings(prefer=JETSON), available) == chosen


def test_providers_asked_for_must_all_be_there():
    with pytest.raises(ConfigError, match=r"^execution provider CUDAExecutionProvider is not in this onnxruntime"):
        onnxruntime.choose_providers(BackendSettings(providers=("CUDAExecutionProvider",)), ["CPUExecutionProvider"])
    asked = ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert onnxruntime.choose_providers(BackendSettings(providers=asked), list(JETSON)) == list(asked)


class _FakeSession:
    """What a session of onnxruntime-gpu on a Jetson reports: the providers it was given."""

    def __init__(self, data, options, providers, provider_options):
        self.data, self.options, self.provider_options = data, options, provider_options
        self._providers = providers

    def get_providers(self):
        return list(self._providers)

    def get_inputs(self):
        return [types.SimpleNamespace(name="input", type="tensor(float)", shape=[None, 64])]

    def get_outputs(self):
        return [types.SimpleNamespace(name="logits", type="tensor(float)", shape=[None, 10])]

    def run(self, *_):  # pragma: no cover  (never called here)
        raise AssertionError


def _jetson_build(sessions: list[_FakeSession]) -> types.SimpleNamespace:
    def session(data, options, providers, provider_options):
        sessions.append(_FakeSession(data, options, providers, provider_options))
        return sessions[-1]

    return types.SimpleNamespace(
        get_available_providers=lambda: list(JETSON),
        SessionOptions=types.SimpleNamespace,
        InferenceSession=session,
        disable_telemetry_events=lambda: None,
    )


def test_on_a_jetson_build_the_session_gets_tensorrt_first_with_its_cache(monkeypatch, tmp_path):
    sessions: list[_FakeSession] = []
    monkeypatch.setattr(onnxruntime, "_ort", lambda telemetry=False: _jetson_build(sessions))  # noqa: ARG005
    cache = tmp_path / "state" / "trt-cache"
    settings = BackendSettings(threads=6, prefer=JETSON, provider_options=tensorrt_options(cache))
    backend = onnxruntime.open_model(b"model", settings)
    assert backend.devices == list(JETSON)
    (made,) = sessions
    assert made.provider_options[0]["trt_engine_cache_path"] == str(cache)
    assert made.provider_options[1:] == [{}, {}]
    assert made.options.intra_op_num_threads == 6
    assert cache.is_dir()  # TensorRT writes into it: it must exist first


def test_a_cache_folder_that_cannot_be_made_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(onnxruntime, "_ort", lambda telemetry=False: _jetson_build([]))  # noqa: ARG005
    (tmp_path / "file").write_text("")
    settings = BackendSettings(prefer=JETSON, provider_options=tensorrt_options(tmp_path / "file" / "trt-cache"))
    with pytest.raises(ConfigError, match=r"TensorRT's engine cache .* cannot be made .*: give a writable --state-dir"):
        onnxruntime.open_model(b"model", settings)


def test_the_real_cpu_build_falls_back_and_makes_no_cache(tmp_path):
    cache = tmp_path / "trt-cache"
    settings = BackendSettings(threads=1, prefer=JETSON, provider_options=tensorrt_options(cache))
    backend = onnxruntime.open_model((DIGITS / "mlp.onnx").read_bytes(), settings)
    assert backend.devices == ["CPUExecutionProvider"]
    assert not cache.exists()


def test_the_note_when_a_jetson_target_runs_on_the_cpu():
    orin = targets.get("jetson-orin")
    (note,) = target_flags.provider_note(orin, "onnxruntime", ["CPUExecutionProvider"])
    assert note.startswith("note: --target jetson-orin prefers TensorrtExecutionProvider, CUDAExecutionProvider")
    assert note.endswith("install onnxruntime-gpu for this JetPack (examples/jetson)")
    assert target_flags.provider_note(orin, "onnxruntime", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == []
    assert target_flags.provider_note(orin, "litert", ["cpu (XNNPACK)"]) == []
    assert target_flags.provider_note(targets.get("rpi4"), "onnxruntime", ["CPUExecutionProvider"]) == []
    assert target_flags.provider_note(None, "onnxruntime", ["CPUExecutionProvider"]) == []


def _pi(cpuinfo: str) -> Platform:
    info = parse_cpuinfo(cpuinfo)
    return Platform("aarch64", "3.11.2", 64, "2.36", info.flags, 4, info.cpu, info.board)


def test_mismatch_warnings_name_what_this_device_lacks():
    assert target_flags.mismatch_warnings(targets.get("rpi4"), _pi(PI4_64)) == []
    assert target_flags.mismatch_warnings(targets.get("rpi5"), _pi(PI4_64)) == [
        "warning: --target rpi5: this CPU lacks asimddp, asimdhp, fphp, which rpi5 assumes"
    ]
    assert target_flags.mismatch_warnings(targets.get("rpi5"), dataclasses.replace(_pi(PI5), cores=2)) == [
        "note: --target rpi5: 2 cores here, so 2 threads, not rpi5's 4"
    ]
    assert target_flags.mismatch_warnings(None, _pi(PI5)) == []
