"""Every registered pass: constructs with its defaults, declares a frozen config, and runs."""

from __future__ import annotations

import dataclasses
import json

import onnx
import pytest

from edgekit import passes
from edgekit.errors import ConfigError
from edgekit.passes.base import PassOutput
from tests.edgekit.graphs import CNN_INPUT, cnn_model, random_input

CALIBRATION = random_input((16, *CNN_INPUT), seed=2)


@pytest.mark.parametrize("name", list(passes.REGISTRY))
def test_registered_pass_constructs_with_defaults_and_runs(name, ctx):
    cls = passes.REGISTRY[name]
    instance = cls(None)

    assert instance.name == name
    assert cls.name == name
    config_cls = type(instance.config)
    assert dataclasses.is_dataclass(config_cls)
    assert config_cls.__dataclass_params__.frozen
    assert cls.Config is config_cls
    first = dataclasses.fields(config_cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(instance.config, first, None)
    json.dumps(instance.config.to_json())

    # the small CNN suits every pass: Conv + Gemm to quantize (int8-dynamic rewrites the Gemm as
    # MatMul), float32 weights to halve, a 5120-weight Gemm to prune
    model = cnn_model()
    before = model.SerializeToString()
    calibration = [{"x": CALIBRATION[i : i + 4]} for i in range(0, len(CALIBRATION), 4)]
    out = instance.run(model, dataclasses.replace(ctx, calibration=calibration))

    assert isinstance(out, PassOutput)
    onnx.checker.check_model(out.model)
    json.dumps(out.details)
    assert all(isinstance(w, str) for w in out.warnings)
    assert model.SerializeToString() == before  # passes never mutate their input


def test_create_by_name_with_a_config():
    created = passes.create("prune", passes.PruneConfig(sparsity=0.25))
    assert isinstance(created, passes.PruneMagnitude)
    assert created.config.sparsity == 0.25


def test_create_an_unknown_pass():
    with pytest.raises(ConfigError, match="unknown pass 'nope': choose from validate, cleanup"):
        passes.create("nope")


def test_variant_passes_are_registered():
    assert set(passes.VARIANT_PASSES) <= set(passes.REGISTRY)
