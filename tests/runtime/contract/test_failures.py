"""failed_at reads the path out of msgspec's own errors: real decoding failures, so a msgspec that words them
differently fails here rather than in a refusal's text."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from edgekit_runtime.contract.failures import failed_at


class Inner(msgspec.Struct):
    size: int


class Outer(msgspec.Struct):
    seq: Annotated[int, msgspec.Meta(ge=1)]
    model: Inner
    counts: dict[str, Annotated[int, msgspec.Meta(gt=0)]] = {}
    items: list[Inner] = []


def _error(doc: object) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(doc, Outer)
    return caught.value


@pytest.mark.parametrize(
    ("doc", "steps"),
    [
        ({"seq": 0, "model": {"size": 1}}, ["seq"]),
        ({"model": {"size": 1}}, ["seq"]),
        ({"seq": 1, "model": {}}, ["model", "size"]),
        ({"seq": 1, "model": {"size": "big"}}, ["model", "size"]),
        ({"seq": 1, "model": {"size": 1}, "counts": {"a": 0}}, ["counts", ...]),
        ({"seq": 1, "model": {"size": 1}, "items": [{"size": 1}, {"size": "x"}]}, ["items", 1, "size"]),
    ],
)
def test_the_path_to_the_refused_value(doc, steps):
    assert failed_at(_error(doc)) == steps


def test_an_error_without_a_path_has_no_steps():
    assert failed_at("Expected `object`, got `int`") == []
    assert failed_at(_error(7)) == []
