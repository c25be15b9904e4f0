"""The host's branches of the one error tree: the runtime defines the root and the shared classes once."""

from __future__ import annotations

import inspect

import pytest
import typer

import edgekit_runtime.errors as runtime_errors
from edgekit import errors
from edgekit.cli.output import user_errors
from edgekit.errors import (
    BundleCheckError,
    BundleError,
    ConfigError,
    DataError,
    EngineError,
    FleetError,
    MissingExtraError,
    ModelError,
    PassError,
    RolloutAbortedError,
    TFLiteConversionError,
)

#: a pass name (ruff takes a literal ``pass_name=`` for a password)
QUANTIZE = "quantize_dynamic"

HOST = {
    "MissingExtraError": runtime_errors.ConfigError,
    "DataError": runtime_errors.EdgekitError,
    "BundleCheckError": runtime_errors.BundleError,
    "TFLiteConversionError": runtime_errors.ModelError,
    "EngineError": runtime_errors.ModelError,
    "PassError": runtime_errors.EdgekitError,
    "FleetError": runtime_errors.EdgekitError,
    "RolloutAbortedError": FleetError,
}


def _classes(module):
    return {name: c for name, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, BaseException)}


def test_the_host_defines_only_its_own_subclasses():
    own = {name for name, c in _classes(errors).items() if c.__module__ == errors.__name__}
    assert own == set(HOST)
    for name, parent in HOST.items():
        assert getattr(errors, name).__bases__ == (parent,), name


def test_every_shared_class_is_the_runtimes_own():
    assert errors.EdgekitError is runtime_errors.EdgekitError
    assert errors.ConfigError is runtime_errors.ConfigError
    for name, cls in _classes(runtime_errors).items():
        if hasattr(errors, name):
            assert getattr(errors, name) is cls, name
        assert name not in HOST
    shared = set(errors.__all__) - set(HOST)
    assert shared <= set(_classes(runtime_errors))


def test_every_host_error_is_an_instance_of_the_runtime_root():
    made = [
        MissingExtraError("packing .tflite models", "litert", "ai-edge-litert"),
        DataError("x"),
        BundleCheckError("x"),
        TFLiteConversionError("x", nodes=(("Erf", "gelu"),)),
        EngineError("x", stage="load", reason="Type Error"),
        PassError("x", pass_name=QUANTIZE),
        FleetError("x"),
        RolloutAbortedError("x", rollout_id="r1"),
    ]
    assert {type(e).__name__ for e in made} == set(HOST)
    for error in made:
        assert isinstance(error, runtime_errors.EdgekitError), error


def test_the_runtimes_docstring_draws_the_host_branches_and_the_hosts_shows_where_they_hang():
    for name in HOST:
        assert f" {name} " in runtime_errors.__doc__, name
        assert f" {name} " in errors.__doc__, name


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MissingExtraError("f", "litert", "ai-edge-litert"), 2),
        (DataError("x"), 2),
        (BundleCheckError("x"), 1),
        (TFLiteConversionError("x"), 3),
        (PassError("x", pass_name=QUANTIZE), 4),
        (FleetError("x"), 1),
        (RolloutAbortedError("x", rollout_id="r"), 5),
    ],
)
def test_host_exit_codes(error, code):
    assert error.exit_code == code


def test_a_bundle_the_host_checks_and_refuses_is_still_a_bundle_error():
    refused = BundleCheckError("member 'golden.npz' does not match its SHA-256")
    assert isinstance(refused, BundleError)
    assert (BundleError.exit_code, refused.exit_code) == (3, 1)


def test_fields_and_messages():
    extra = MissingExtraError("packing .tflite models", "litert", "ai-edge-litert")
    assert str(extra) == "packing .tflite models needs ai-edge-litert: pip install 'edgekit[litert]'"
    assert (extra.feature, extra.extra, extra.package) == ("packing .tflite models", "litert", "ai-edge-litert")
    assert str(PassError("no Gather node", pass_name=QUANTIZE)) == "quantize_dynamic: no Gather node"
    assert TFLiteConversionError("x", nodes=(("Erf", "g"),)).nodes == (("Erf", "g"),)
    assert ModelError("x").path is None
    aborted = RolloutAbortedError("x", rollout_id="r1", devices=("pi-1",))
    assert (aborted.rollout_id, aborted.devices) == ("r1", ("pi-1",))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (runtime_errors.BundleError("member 'model.onnx' does not match its SHA-256"), 3),
        (runtime_errors.InvalidInputError("input 'x' expects shape [1, 4]"), 2),
        (ConfigError("--mode 'int4' is unknown"), 2),
        (BundleCheckError("bundle is unsigned"), 1),
    ],
)
def test_the_cli_turns_any_error_of_the_tree_into_one_line_and_its_exit_code(error, code, capsys):
    with pytest.raises(typer.Exit) as exited, user_errors():
        raise error
    assert exited.value.exit_code == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_anything_else_is_not_turned_into_an_exit_code():
    with pytest.raises(ValueError, match="a bug"), user_errors():
        raise ValueError("a bug")
