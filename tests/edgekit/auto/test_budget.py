"""Budgets: parsing what users write, and the thresholds they set."""

from __future__ import annotations

import pytest

from edgekit.auto.budget import Budget, parse_budget
from edgekit.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "amount", "relative"),
    [("1%", 0.01, True), (" 0.5 % ", 0.005, True), ("0.005", 0.005, False), ("0.5pt", 0.005, False), ("0", 0, False)],
)
def test_parse(text, amount, relative):
    budget = parse_budget(text)
    assert budget.amount == pytest.approx(amount)
    assert budget.relative is relative


@pytest.mark.parametrize("text", ["", "one", "-1%", "nan", "inf", "100%", "1%%x"])
def test_parse_refuses_what_is_not_a_budget(text):
    with pytest.raises(ConfigError, match="--budget"):
        parse_budget(text)


def test_relative_budget_scales_with_the_baseline():
    budget = Budget(0.01, relative=True)
    assert budget.threshold(0.9, higher_is_better=True) == pytest.approx(0.891)
    assert budget.meets(0.891, 0.9, higher_is_better=True)
    assert not budget.meets(0.8909, 0.9, higher_is_better=True)


def test_a_relative_budget_of_one_percent_accepts_exactly_ninety_nine_percent_agreement():
    assert Budget(0.01, relative=True).meets(0.99, 1.0, higher_is_better=True)


def test_lower_is_better_metrics_may_rise_by_the_budget():
    budget = Budget(0.5, relative=False)
    assert budget.threshold(2.0, higher_is_better=False) == pytest.approx(2.5)
    assert budget.meets(2.4, 2.0, higher_is_better=False)
    assert not budget.meets(2.6, 2.0, higher_is_better=False)


def test_nan_never_meets():
    assert not Budget(1.0, relative=False).meets(float("nan"), 0.5, higher_is_better=True)


def test_text_round_trips():
    assert parse_budget(Budget(0.01, relative=True).text) == Budget(0.01, relative=True)
    assert parse_budget(Budget(0.005, relative=False).text) == Budget(0.005, relative=False)
