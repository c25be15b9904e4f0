"""A deploy's health watch: the inference counters, and when a new model's window is judged unhealthy.

The health watch compares the new model's window with the thresholds of :class:`HealthPolicy`: the error
rate (5xx among inference requests), and the mean latency against the old model's over the time the deploy
took before the switch (when that saw enough requests to judge). A window with fewer than ``min_requests``
commits: there was no traffic to judge by, and the self-test passed. A rise in the share of 4xx answers (requests
the new model refuses that the old one took) past ``max_client_error_rise`` rolls back as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edgekit_runtime.errors import ConfigError


@dataclass(frozen=True)
class Health:
    """Inference counters at one moment (they only grow)."""

    requests: int
    errors: int
    seconds: float
    #: 4xx answers among ``requests``: inputs the model refused
    client_errors: int = 0

    def __sub__(self, other: Health) -> Health:
        """What happened between ``other`` and this."""
        return Health(
            self.requests - other.requests,
            self.errors - other.errors,
            self.seconds - other.seconds,
            self.client_errors - other.client_errors,
        )

    @property
    def client_error_rate(self) -> float:
        """4xx answers per request (0 without requests)."""
        return self.client_errors / self.requests if self.requests else 0.0

    @property
    def error_rate(self) -> float:
        """Errors per request (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_seconds(self) -> float:
        """Mean latency (0 without requests)."""
        return self.seconds / self.requests if self.requests else 0.0


class HealthProbe(Protocol):
    """Where the counters come from (the server's)."""

    def snapshot(self) -> Health:
        """The counters now."""


@dataclass(frozen=True)
class HealthPolicy:
    """When a new model is judged unhealthy, and for how long it is watched."""

    #: seconds the new model is watched before it is committed
    window: float = 30.0
    #: error rate above which it is rolled back
    max_error_rate: float = 0.05
    #: mean latency above this multiple of the old model's rolls it back
    max_latency_ratio: float = 2.0
    #: requests a window needs for its numbers to count
    min_requests: int = 20
    #: rise in the share of 4xx answers, against the old model's, above which it is rolled back
    max_client_error_rise: float = 0.25

    def __post_init__(self) -> None:
        """Refuse policies that cannot work."""
        if (
            self.window < 0
            or not 0 <= self.max_error_rate <= 1
            or self.max_latency_ratio <= 0
            or not 0 <= self.max_client_error_rise <= 1
        ):
            raise ConfigError(
                "health policy: window >= 0, max_error_rate in [0, 1], max_latency_ratio > 0, "
                "max_client_error_rise in [0, 1]"
            )

    def verdict(self, before: Health, after: Health) -> str | None:
        """Why ``after`` (the new model's window) is unhealthy, or ``None``."""
        if after.requests < self.min_requests:
            return None
        if after.error_rate > self.max_error_rate:
            return f"error rate {after.error_rate:.1%} over {after.requests} requests > {self.max_error_rate:.1%}"
        old_refusals = before.client_error_rate if before.requests >= self.min_requests else 0.0
        if after.client_error_rate - old_refusals > self.max_client_error_rise:
            return (
                f"4xx answers {after.client_error_rate:.1%} over {after.requests} requests, against "
                f"{old_refusals:.1%} before: a rise over {self.max_client_error_rise:.0%}"
            )
        if before.requests >= self.min_requests and after.mean_seconds > before.mean_seconds * self.max_latency_ratio:
            ratio = after.mean_seconds / before.mean_seconds
            return f"mean latency {ratio:.1f}x the previous model's > {self.max_latency_ratio:g}x"
        return None
