"""The deploy state machine with real bundles: verified by the runtime's loader, switched through a recording
seam, watched through scripted counters; and its record, read back as a restart would."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edgekit_runtime.contract.statuses import Phase
from edgekit_runtime.fleet import deploy as deploy_module
from edgekit_runtime.fleet.deploy import Deployer
from edgekit_runtime.fleet.deploy_command import DeployCommand
from edgekit_runtime.fleet.deploy_health import Health, HealthPolicy
from edgekit_runtime.fleet.models import ModelStore
from edgekit_runtime.model import LoadOptions, load
from edgekit_runtime.signing import load_trusted_keys
from tests.runtime.tamper import re_pinned_with_other_golden_outputs, tampered, unsigned


class Probe:
    """Counters that grow by ``per_check`` requests (``errors`` 5xx, ``refused`` 4xx) at each snapshot."""

    def __init__(self, per_check: int = 0, errors: int = 0, seconds: float = 0.001, refused: int = 0) -> None:
        self.health = Health(0, 0, 0.0)
        self.per_check, self.errors, self.seconds, self.refused = per_check, errors, seconds, refused

    def snapshot(self) -> Health:
        h = self.health
        self.health = Health(
            h.requests + self.per_check,
            h.errors + self.errors,
            h.seconds + self.per_check * self.seconds,
            h.client_errors + self.refused,
        )
        return h


def local_file(command, _note):
    """The unit tests' fetch: the bundle file the command names (a device takes no paths from the network)."""
    with Path(command.source).open("rb") as fh:
        yield from iter(lambda: fh.read(1 << 16), b"")


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
            fetch=local_file,
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
    from edgekit.bundle.pack import BundleOptions
    from edgekit.bundle.source import PackData, pack_source
    from tests.runtime.conftest import DIGITS

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


@pytest.fixture(scope="module")
def versions(tmp_path_factory, keys):
    """The digits MLP signed as 0.9.0 and 2.0.0, and the digits CNN (other inputs) as 3.0.0, all 'digits-mlp'."""
    from edgekit.bundle.pack import BundleOptions
    from edgekit.bundle.source import PackData, pack_source
    from tests.runtime.conftest import DIGITS

    out = tmp_path_factory.mktemp("versions")

    def pack(model: str, version: str, calib: str) -> Path:
        options = BundleOptions(name="digits-mlp", version=version, signing_key=keys[0])
        return pack_source(str(DIGITS / model), out / version, options, PackData(calib=DIGITS / calib)).path

    return {
        "0.9.0": pack("mlp.onnx", "0.9.0", "mlp_calib.npz"),
        "2.0.0": pack("mlp.onnx", "2.0.0", "mlp_calib.npz"),
        "cnn-3.0.0": pack("cnn.onnx", "3.0.0", "cnn_calib.npz"),
    }


def sized(command_id: str, path: Path, **flags) -> DeployCommand:
    data = path.read_bytes()
    return DeployCommand(command_id, str(path), hashlib.sha256(data).hexdigest(), len(data), **flags)


def test_an_older_version_is_refused_unless_the_command_says_downgrade(rig, versions):
    make, store, events, swaps, serving = rig
    assert serving.version == "1.0.0"
    deployer = make()
    assert deployer.deploy(sized("d1", versions["0.9.0"])) is Phase.REFUSED
    assert "older than digits-mlp 1.0.0 serving now: refusing a downgrade" in events[-1][2]
    assert swaps == []
    assert list(store.root.glob("*.edgebundle")) == []
    assert deployer.deploy(sized("d2", versions["0.9.0"], allow_downgrade=True)) is Phase.COMMITTED
    assert deployer.serving.version == "0.9.0"


def test_a_newer_version_is_taken(rig, versions):
    make, *_ = rig
    assert make().deploy(sized("d1", versions["2.0.0"])) is Phase.COMMITTED


def test_other_inputs_are_refused_unless_the_command_says_schema_change(rig, versions):
    make, _store, events, swaps, _ = rig
    deployer = make()
    assert deployer.deploy(sized("d1", versions["cnn-3.0.0"])) is Phase.REFUSED
    assert "differ from the serving model's" in events[-1][2]
    assert "--allow-schema-change" in events[-1][2]
    assert swaps == []
    assert deployer.deploy(sized("d2", versions["cnn-3.0.0"], allow_schema_change=True)) is Phase.COMMITTED


def test_a_bundle_larger_than_the_signed_size_is_refused_and_leaves_nothing(rig, versions):
    make, store, events, swaps, _ = rig
    path = versions["2.0.0"]
    short = DeployCommand("d1", str(path), hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size - 1)
    assert make().deploy(short) is Phase.FAILED
    assert "more than the" in events[-1][2]
    assert swaps == []
    assert [p.name for p in store.root.iterdir() if p.name != "state.json"] == []


def test_a_bundle_larger_than_the_devices_limit_is_refused(rig, versions):
    make, _store, events, _, _ = rig
    deployer = make()
    deployer.max_bundle_bytes = 1000
    assert deployer.deploy(sized("d1", versions["2.0.0"])) is Phase.FAILED
    assert "more than the 1000 bytes" in events[-1][2]


def test_no_room_on_the_disk_fails_before_fetching(rig, versions, monkeypatch):
    make, _store, events, _, _ = rig
    fetched = []
    deployer = make()
    deployer.fetch = lambda command, _note: fetched.append(command) or iter(())

    class Full:
        free = 10 << 20

    monkeypatch.setattr(deploy_module.shutil, "disk_usage", lambda _path: Full)
    assert deployer.deploy(sized("d1", versions["2.0.0"])) is Phase.FAILED
    assert "not enough disk" in events[-1][2]
    assert fetched == []


def test_a_rise_in_4xx_answers_rolls_back(rig, versions):
    make, _store, events, swaps, serving = rig
    probe = Probe(per_check=100)

    class RefusesOnceSwitched:
        def snapshot(self) -> Health:
            probe.refused = 60 if swaps else 0  # the new model refuses 60% of what the old one answered
            return probe.snapshot()

    deployer = make(probe=RefusesOnceSwitched(), policy=HealthPolicy(window=0))
    assert deployer.deploy(sized("d1", versions["2.0.0"])) is Phase.ROLLED_BACK
    assert "4xx answers" in events[-1][2]
    assert swaps[-1] is serving


def test_a_restart_removes_staging_files_and_chunks_but_the_last_fetchs(rig):
    make, store, *_ = rig
    (store.root / ".incoming.abc").write_bytes(b"x" * 100)
    (store.root / ".state.json.tmp1").write_bytes(b"{}")
    kept, other = store.root / f".partial-{'a' * 64}", store.root / f".partial-{'b' * 64}"
    for folder in (kept, other):
        folder.mkdir()
        (folder / "0").write_bytes(b"chunk")
    store.save({"deploy": {"id": "c1", "phase": "fetching", "source": f"mqtt:{'a' * 64}"}})
    make().recover()
    assert sorted(p.name for p in store.root.iterdir()) == sorted([kept.name, "state.json"])
