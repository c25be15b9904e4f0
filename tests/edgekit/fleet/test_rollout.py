"""The rollout's stages against an in-memory fleet: canary first, abort and rollback, the rest after."""

from __future__ import annotations

import time

from edgekit.fleet.link import FleetMessage
from edgekit.fleet.rollout import DeployPlan, deploy, find_targets, rollback, set_config
from edgekit.fleet.rules import DeviceState, parse_abort_if

DEPLOY = ("received", "fetching", "verifying", "testing", "switching", "watching", "committed")


class FakeFleet:
    """Devices that answer commands at once: ``outcome[device]`` is the final status of a deploy."""

    def __init__(self, outcome: dict[str, str], groups: dict[str, tuple[str, ...]] | None = None) -> None:
        self.outcome = outcome
        self.groups = groups or {}
        self.sent: list[tuple[str, dict]] = []
        self.inbox: list[FleetMessage] = []

    def command(self, target: str, doc: dict, timeout: float = 10.0) -> None:  # noqa: ARG002 (the Link protocol)
        self.sent.append((target, doc))
        devices = [d for d, g in self.groups.items() if target[1:] in g] if target.startswith("@") else [target]
        for device in devices:
            if doc["command"] == "status":
                steps = ["done"]
            elif doc["command"] == "rollback":
                steps = ["received", "rolled_back"]
            else:
                final = self.outcome[device]
                steps = list(DEPLOY) if final == "committed" else ["received", "fetching", final]
            for status in steps:
                event = {"id": doc["id"], "command": doc["command"], "status": status, "time": time.time()}
                self.inbox.append(FleetMessage("events", device, event, time.time()))

    def next_message(self, timeout: float) -> FleetMessage | None:  # noqa: ARG002 (the Link protocol)
        return self.inbox.pop(0) if self.inbox else None

    def collect_states(self, seconds: float = 1.0) -> list[DeviceState]:  # noqa: ARG002 (the Link protocol)
        return [DeviceState(d, "online") for d in sorted(self.outcome)]

    def targets(self) -> list[str]:
        return [target for target, _ in self.sent]


SHA = "ab" * 32


def plan(devices, **kw) -> DeployPlan:
    fields = {"source": f"mqtt:{SHA}", "sha256": SHA, "timeout": 1.0, "size": 4096, **kw}
    return DeployPlan(targets=list(devices), **fields)


def test_a_deploy_command_carries_the_bundle_s_hash_and_size_and_only_the_consents_given():
    assert plan(["pi-1"]).command() == {"command": "deploy", "source": f"mqtt:{SHA}", "sha256": SHA, "size": 4096}
    both = plan(["pi-1"], allow_downgrade=True, allow_schema_change=True).command()
    assert both["allow_downgrade"] is True
    assert both["allow_schema_change"] is True
    only = plan(["pi-1"], allow_schema_change=True).command()
    assert "allow_downgrade" not in only
    assert only["allow_schema_change"] is True


def test_every_device_is_sent_the_plan_s_command_with_its_own_id():
    fleet = FakeFleet(dict.fromkeys(("pi-1", "pi-2"), "committed"))
    url = f"http://10.0.0.5:8700/{SHA}.edgebundle"
    deploy(fleet, plan(fleet.outcome, source=url, canary=0.5, allow_downgrade=True), rollout_id="r0")
    want = {"command": "deploy", "source": url, "sha256": SHA, "size": 4096, "allow_downgrade": True}
    assert fleet.sent == [("pi-1", {**want, "id": "r0-pi-1"}), ("pi-2", {**want, "id": "r0-pi-2"})]


def test_the_rest_is_sent_the_bundle_only_after_the_canary_committed():
    fleet = FakeFleet(dict.fromkeys(("pi-1", "pi-2", "pi-3", "pi-4"), "committed"))
    seen = []
    result = deploy(fleet, plan(fleet.outcome, canary=0.25), rollout_id="r1", on_change=seen.append)
    assert result.outcome == "completed"
    assert result.canary == ["pi-1"]
    assert fleet.targets() == ["pi-1", "pi-2", "pi-3", "pi-4"]
    assert [doc["id"] for _, doc in fleet.sent] == ["r1-pi-1", "r1-pi-2", "r1-pi-3", "r1-pi-4"]
    assert all(doc["sha256"] == "ab" * 32 and doc["command"] == "deploy" for _, doc in fleet.sent)
    assert {s.status for s in result.steps} == {"committed"}
    assert seen


def test_a_canary_that_does_not_commit_aborts_and_rolls_back_the_ones_that_did():
    fleet = FakeFleet({"pi-1": "committed", "pi-2": "refused", "pi-3": "committed", "pi-4": "committed"})
    result = deploy(fleet, plan(fleet.outcome, canary=0.5), rollout_id="r2")
    assert result.outcome == "aborted"
    assert "pi-2 refused" in result.reason
    assert fleet.targets() == ["pi-1", "pi-2", "pi-1"]  # the canary, then pi-1's rollback; pi-3, pi-4 never
    assert fleet.sent[-1][1] == {"command": "rollback", "id": "r2-rb-pi-1"}


def test_a_canary_that_never_answers_times_out_and_aborts():
    class Silent(FakeFleet):
        def command(self, target, doc, timeout=10.0):  # noqa: ARG002 (the Link protocol)
            self.sent.append((target, doc))

    fleet = Silent({"pi-1": "committed", "pi-2": "committed"})
    result = deploy(fleet, plan(fleet.outcome, canary=0.5, timeout=0.2), rollout_id="r3")
    assert result.outcome == "aborted"
    assert "pi-1 timeout" in result.reason
    assert fleet.targets() == ["pi-1"]


def test_the_abort_rule_is_judged_on_the_canary_after_the_bake():
    fleet = FakeFleet(dict.fromkeys(("pi-1", "pi-2"), "committed"))
    asked, slept = [], []

    def metrics(device, since):
        asked.append((device, since > 0))
        return {"error_rate": 0.2, "p99_ms": 5.0}

    rule = parse_abort_if("error_rate>0.05")
    result = deploy(
        fleet, plan(fleet.outcome, canary=0.5, abort_rule=rule, bake=7), metrics=metrics, sleep=slept.append
    )
    assert slept == [7]
    assert asked == [("pi-1", True)]  # since the commit the device reported
    assert result.outcome == "aborted"
    assert "--abort-if on canary pi-1: error_rate>0.05" in result.reason
    assert fleet.targets() == ["pi-1", "pi-1"]  # the deploy, then its rollback


def test_a_healthy_canary_passes_the_abort_rule():
    fleet = FakeFleet(dict.fromkeys(("pi-1", "pi-2"), "committed"))
    rule = parse_abort_if("error_rate>0.05 or p99_ms>40")
    result = deploy(
        fleet,
        plan(fleet.outcome, canary=0.5, abort_rule=rule, bake=0),
        metrics=lambda _d, _s: {"error_rate": 0.0, "p99_ms": 3.0},
    )
    assert result.outcome == "completed"
    assert fleet.targets() == ["pi-1", "pi-2"]


def test_a_failure_after_the_canary_is_reported_as_incomplete():
    fleet = FakeFleet({"pi-1": "committed", "pi-2": "failed"})
    result = deploy(fleet, plan(fleet.outcome, canary=0.5))
    assert result.outcome == "incomplete"
    assert "pi-2 failed" in result.reason


def test_rollback_waits_for_every_device():
    fleet = FakeFleet(dict.fromkeys(("pi-1", "pi-2"), "committed"))
    result = rollback(fleet, ["pi-2", "pi-1"], timeout=1.0, rollout_id="rb")
    assert result.outcome == "completed"
    assert [s.status for s in result.steps] == ["rolled_back", "rolled_back"]
    assert result.to_json()["steps"][0]["id"] == "rb-rb-pi-1"


def test_a_group_is_found_by_asking_it_when_the_states_do_not_say():
    fleet = FakeFleet(dict.fromkeys(("pi-1", "pi-2", "pi-3"), "committed"), groups={"pi-1": ("lab",), "pi-3": ("lab",)})
    assert find_targets(fleet, group="lab", settle=0, answer=0.1) == ["pi-1", "pi-3"]
    assert fleet.sent[0][0] == "@lab"
    assert fleet.sent[0][1]["command"] == "status"
    assert find_targets(fleet, settle=0) == ["pi-1", "pi-2", "pi-3"]


class Configured(FakeFleet):
    """Devices that answer ``set-config`` at once: ``outcome[device]`` is ``done`` or ``refused``."""

    def command(self, target, doc, timeout=10.0):  # noqa: ARG002 (the Link protocol)
        self.sent.append((target, doc))
        detail = "deploy_watch 30 -> 5" if self.outcome[target] == "done" else "'colour': not a setting"
        event = {"id": doc["id"], "command": doc["command"], "status": self.outcome[target], "detail": detail}
        self.inbox.append(FleetMessage("events", target, {**event, "time": time.time()}, time.time()))


def test_set_config_goes_to_every_device_at_once_and_waits_for_each_answer():
    fleet = Configured({"pi-1": "done", "pi-2": "done"})
    result = set_config(fleet, ["pi-2", "pi-1"], {"deploy_watch": 5}, timeout=1.0, rollout_id="s1")
    assert result.outcome == "completed"
    assert result.command == "set-config"
    assert fleet.sent == [
        ("pi-1", {"command": "set-config", "config": {"deploy_watch": 5}, "id": "s1-pi-1"}),
        ("pi-2", {"command": "set-config", "config": {"deploy_watch": 5}, "id": "s1-pi-2"}),
    ]
    assert [(s.device, s.status, s.detail) for s in result.steps] == [
        ("pi-1", "done", "deploy_watch 30 -> 5"),
        ("pi-2", "done", "deploy_watch 30 -> 5"),
    ]


def test_a_device_that_refuses_the_settings_makes_set_config_incomplete():
    fleet = Configured({"pi-1": "done", "pi-2": "refused"})
    result = set_config(fleet, ["pi-1", "pi-2"], {"colour": "red"}, timeout=1.0, rollout_id="s2")
    assert result.outcome == "incomplete"
    assert result.reason == "1 of 2 devices did not take the settings: pi-2 refused ('colour': not a setting)"
