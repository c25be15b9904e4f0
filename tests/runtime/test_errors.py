"""The one error tree: defined here, every class under one root, each with its exit code and fields."""

from __future__ import annotations

import inspect

import pytest

from edgekit_runtime import errors
from edgekit_runtime.errors import (
    BundleError,
    CommandError,
    ConfigError,
    EdgekitError,
    HttpError,
    InvalidInputError,
    MissingBackendError,
    ModelError,
    SelfTestError,
    SignatureError,
    TelemetryError,
    UnsafeModelError,
)
from edgekit_runtime.server.asgi import ClientGone

CLASSES = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BaseException)]


def test_every_error_hangs_from_the_one_root_and_is_drawn_in_the_tree():
    assert {c.__name__ for c in CLASSES} == {
        "EdgekitError",
        "ConfigError",
        "MissingBackendError",
        "BundleError",
        "SignatureError",
        "UnsafeModelError",
        "ModelError",
        "SelfTestError",
        "InvalidInputError",
        "HttpError",
        "TelemetryError",
        "CommandError",
        "WorkerError",
    }
    for cls in CLASSES:
        assert issubclass(cls, EdgekitError), cls
        assert f" {cls.__name__} " in errors.__doc__ or f"\n    {cls.__name__} " in errors.__doc__, cls


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (EdgekitError("x"), 1),
        (ConfigError("x"), 2),
        (MissingBackendError("LiteRT models", "litert", "ai-edge-litert"), 2),
        (BundleError("x"), 3),
        (SignatureError("x"), 3),
        (UnsafeModelError("x", source="b/model.onnx", reason="custom-op"), 3),
        (ModelError("x"), 3),
        (SelfTestError("x"), 3),
        (InvalidInputError("x"), 2),
        (HttpError(413, "x"), 1),
        (TelemetryError("x"), 1),
        (CommandError("x"), 1),
    ],
)
def test_exit_codes(error, code):
    assert error.exit_code == code
    assert isinstance(error, EdgekitError)


def test_the_message_is_the_string_and_structured_fields_ride_along(tmp_path):
    assert str(BundleError("member 'a' is missing: rebuild")) == "member 'a' is missing: rebuild"
    missing = MissingBackendError("LiteRT models", "litert", "ai-edge-litert")
    assert str(missing) == "LiteRT models need ai-edge-litert: pip install 'edgekit-runtime[litert]'"
    assert missing.package == "ai-edge-litert"
    unsafe = UnsafeModelError("x", source="b/model.onnx", reason="external-data")
    assert (unsafe.source, unsafe.reason) == ("b/model.onnx", "external-data")
    assert ModelError("x").path is None
    assert ModelError("x", path=tmp_path / "m.onnx").path == tmp_path / "m.onnx"
    assert SelfTestError("x").path is None
    assert InvalidInputError("x", input_name="input").input_name == "input"
    assert CommandError("x", command_id="c1").command_id == "c1"


def test_an_http_error_carries_its_status_and_headers():
    refused = HttpError(405, "GET is not allowed on /predict: use POST", headers=((b"allow", b"POST"),))
    assert (refused.status, refused.message, refused.headers) == (405, str(refused), ((b"allow", b"POST"),))
    assert HttpError(400, "x").headers == ()


def test_a_client_that_hangs_up_is_a_signal_not_an_error():
    assert issubclass(ClientGone, Exception)
    assert not issubclass(ClientGone, EdgekitError)
    assert "ClientGone" in errors.__doc__
