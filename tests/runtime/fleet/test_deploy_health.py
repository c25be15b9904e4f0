"""A deploy's health policy: when a new model's window is judged unhealthy."""

from __future__ import annotations

from edgekit_runtime.fleet.deploy_health import Health, HealthPolicy


def test_the_old_models_own_4xx_share_is_not_held_against_the_new_one():
    policy = HealthPolicy(min_requests=20, max_client_error_rise=0.25)
    before = Health(100, 0, 0.1, 50)  # clients already sent half their inputs wrong
    assert policy.verdict(before, Health(100, 0, 0.1, 60)) is None
    assert policy.verdict(before, Health(100, 0, 0.1, 80)) is not None
