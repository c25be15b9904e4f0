"""The deploy state machine with real bundles: verified by the runtime's loader, switched through a recording
seam, watched through scripted counters; and its record, read back as a restart would."""

from __future__ import annotations

import hashlib
import json

import pytest

from edgekit_runtime.fleet.deploy import DeployCommand, Deployer, Health, HealthPolicy, Phase
from edgekit_runtime.fleet.models import ModelStore
from edgekit_runtime.model import LoadOptions, load
from edgekit_runtime.signing import load_trusted_keys
from tests.runtime.tamper import re_pinned_with_other_golden_outputs, tampered, unsigned


class Probe:
    """Counters that grow by ``per_check`` requests (``errors`` of them failing) at each snapshot."""

    def __init__(self, per_check: int = 0, errors: int = 0, seconds: float = 0.001) -> None:
        self.health = Health(0, 0, 0.0)
        self.per_check, self.errors, self.seconds = per_check, errors, seconds

    def snapshot(self) -> Health:
        h = self.health
        self.health = Health(
            h.requests + self.per_check, h.errors + self.errors, h.seconds + self.per_check * self.seconds
        )
        return h


@pytest.fixture
def rig(tmp_path, signed_bundle, keys):
    trusted = load_trusted_keys([keys[1]])
    serving = load(signed_bundle, LoadOptions(trusted_keys=trusted))
    events, swaps = [], []
    store = ModelStore(tmp_path / "models")

    def make(probe=None, policy=None):
        return Deployer(
            store,
            serving,
            open_model=lambda path: load(path, LoadOptions(trusted_keys=trusted)),
            swap=swaps.append,
            probe=probe or Probe(),
            emit=lambda cid, phase, detail: events.append((cid, phase, detail)),
            policy=policy or HealthPolicy(window=0),
            sleep=lambda _s: None,
        )

    return make, store, events, swaps, serving


def phases(events):
    return [phase for _, phase, _ in events]


def test_a_good_signed_bundle_is_committed(rig, signed_bundle):
    make, store, events, swaps, _ = rig
    sha = hashlib.sha256(signed_bundle.read_bytes()).hexdigest()
    assert make().deploy(DeployCommand("c1", str(signed_bundle), sha)) is Phase.COMMITTED
    assert phases(events) == [
        Phase.RECEIVED,
        Phase.FETCHING,
        Phase.VERIFYING,
        Phase.TESTING,
        Phase.SWITCHING,
        Phase.WATCHING,
        Phase.COMMITTED,
    ]
    assert len(swaps) == 1
    state = store.state()
    assert state["current"] == sha
    assert state["deploy"]["phase"] == "committed"
    assert store.has(sha)


@pytest.mark.parametrize("spoil", [unsigned, tampered, re_pinned_with_other_golden_outputs])
def test_a_bundle_that_does_not_verify_is_refused_and_nothing_switches(rig, signed_bundle, tmp_path, spoil):
    make, store, events, swaps, _ = rig
    bad = spoil(signed_bundle, tmp_path / "bad.edgebundle")
    assert make().deploy(DeployCommand("c2", str(bad))) is Phase.REFUSED
    assert swaps == []
    assert phases(events)[-1] is Phase.REFUSED
    assert store.state().get("current") is None
    assert list(store.root.glob("*.edgebundle")) == []  # the refused bundle is not kept


def test_a_bundle_damaged_on_the_way_fails(rig, signed_bundle):
    make, store, events, swaps, _ = rig
    assert make().deploy(DeployCommand("c3", str(signed_bundle), "0" * 64)) is Phase.FAILED
    assert "damaged or replaced" in events[-1][2]
    assert swaps == []
    assert list(store.root.glob("*.edgebundle")) == []


def test_errors_under_traffic_roll_back_by_themselves(rig, signed_bundle):
    make, store, events, swaps, serving = rig
    deployer = make(probe=Probe(per_check=100, errors=20), policy=HealthPolicy(window=0, max_error_rate=0.05))
    assert deployer.deploy(DeployCommand("c4", str(signed_bundle))) is Phase.ROLLED_BACK
    assert len(swaps) == 2
    assert swaps[1] is serving  # back to the model that served before
    assert deployer.serving is serving
    assert "error rate" in events[-1][2]
    assert store.state().get("current") is None


@pytest.mark.parametrize(
    ("stopped_in", "ended_in"),
    [
        ("fetching", Phase.FAILED),
        ("verifying", Phase.FAILED),
        ("switching", Phase.ROLLED_BACK),
        ("watching", Phase.ROLLED_BACK),
    ],
)
def test_a_restart_mid_deploy_ends_in_a_known_good_state(rig, signed_bundle, stopped_in, ended_in):
    make, store, events, _, _ = rig
    sha, _ = store.put_file(signed_bundle)
    store.save({"current": sha, "deploy": {"id": "c5", "phase": stopped_in, "source": "x"}, "candidate": "f" * 64})
    path, ended = make().recover()
    assert path == store.path(sha)  # the committed model serves
    assert ended is ended_in
    assert events[-1][:2] == ("c5", ended_in)
    assert json.loads((store.root / "state.json").read_text())["deploy"]["phase"] == ended_in.value


def test_a_new_store_serves_the_commands_model(rig):
    make, *_ = rig
    assert make().recover() == (None, None)


def test_the_first_deploy_keeps_the_command_lines_bundle_to_roll_back_to(rig, signed_bundle, keys, tmp_path):
    from edgekit.bundle.pack import BundleOptions  # noqa: PLC0415
    from edgekit.bundle.source import PackData, pack_source  # noqa: PLC0415
    from tests.runtime.conftest import DIGITS  # noqa: PLC0415

    make, store, _events, swaps, serving = rig
    newer = pack_source(
        str(DIGITS / "mlp.onnx"),
        tmp_path,
        BundleOptions(name="digits-mlp", version="2.0.0", signing_key=keys[0]),
        PackData(calib=DIGITS / "mlp_calib.npz"),
    ).path
    old_sha = hashlib.sha256(signed_bundle.read_bytes()).hexdigest()
    assert store.state() == {}  # a new device: only the command line's MODEL so far
    deployer = make()
    assert deployer.deploy(DeployCommand("c1", str(newer))) is Phase.COMMITTED
    assert store.state()["previous"] == old_sha
    assert store.has(old_sha)
    assert deployer.rollback("r1") is Phase.ROLLED_BACK
    assert store.state()["current"] == old_sha
    assert swaps[-1].version == serving.version
