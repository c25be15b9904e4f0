"""Compress under an accuracy budget: candidates, metric, sensitivity-ranked fallback, choice, verdict."""

from edgekit.auto.budget import DEFAULT_BUDGET, Budget, parse_budget
from edgekit.auto.candidates import PREFERENCES, Candidate, Prefer, auto_candidates
from edgekit.auto.search import AutoOptions

__all__ = [
    "DEFAULT_BUDGET",
    "PREFERENCES",
    "AutoOptions",
    "Budget",
    "Candidate",
    "Prefer",
    "auto_candidates",
    "parse_budget",
]
