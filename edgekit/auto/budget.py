"""The accuracy budget: how much of a metric a compressed model may lose.

``--budget 1%`` is relative (the metric may fall 1% of the FP32 model's value), ``--budget 0.005``
absolute (in the metric's own units: 0.005 of accuracy is half a point), ``--budget 0.5pt`` the same
in percentage points. For a lower-is-better metric (MAE, RMSE) the budget is how far it may rise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    """A loss allowance, relative to the baseline or absolute."""

    amount: float
    relative: bool

    @property
    def text(self) -> str:
        """As the user would write it."""
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"

    def threshold(self, baseline: float, *, higher_is_better: bool) -> float:
        """The worst metric value that still meets the budget."""
        allowance = self.amount * abs(baseline) if self.relative else self.amount
        return baseline - allowance if higher_is_better else baseline + allowance

    def meets(self, value: float, baseline: float, *, higher_is_better: bool) -> bool:
        """Whether ``value`` is within the budget of ``baseline``."""
        if math.isnan(value):
            return False
        limit = self.threshold(baseline, higher_is_better=higher_is_better)
        tolerance = 1e-12 * max(1.0, abs(limit))  # 0.99 must meet 1% of 1.0 despite rounding
        return value >= limit - tolerance if higher_is_better else value <= limit + tolerance

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""
        return {"amount": self.amount, "relative": self.relative, "text": self.text}


DEFAULT_BUDGET = Budget(0.01, relative=True)


def parse_budget(text: str) -> Budget:
    """``'1%'`` (relative), ``'0.005'`` (absolute) or ``'0.5pt'`` (absolute, percentage points)."""
    raw = text.strip().lower()
    relative = raw.endswith("%")
    points = raw.endswith(("pt", "pp"))
    number = raw.rstrip("%").removesuffix("pt").removesuffix("pp").strip()
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        msg = f"--budget '{text}' is not a budget: write 1% (relative), 0.005 (absolute) or 0.5pt (points)"
        raise ConfigError(msg)
    if relative or points:
        value /= 100.0
    if relative and value >= 1.0:
        raise ConfigError(f"--budget '{text}' allows losing everything: use less than 100%")
    return Budget(value, relative=relative)
