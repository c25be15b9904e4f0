"""The chunked fetch against a stand-in broker that sends a topic's retained message on subscribe (the real
broker's part is in tests/integration/test_fleet_chunks.py)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from edgekit_runtime.errors import BundleError
from edgekit_runtime.fleet import chunks as chunks_module
from edgekit_runtime.fleet.chunks import ChunkFetcher, ChunkManifest, bundle_topic, manifest_for, mqtt_source
from edgekit_runtime.fleet.deploy_command import DeployCommand

FLEET = "lab"
DATA = os.urandom(10_000)
SHA = hashlib.sha256(DATA).hexdigest()
CHUNK = 1024


class Retained:
    """Retained messages by topic; a subscribe delivers the topic's message, as a broker does."""

    def __init__(self, messages: dict[str, bytes]) -> None:
        self.messages = messages
        self.fetcher: ChunkFetcher | None = None
        self.subscribed: list[str] = []
        self.unsubscribed: list[str] = []

    def subscribe(self, topic: str) -> None:
        self.subscribed.append(topic)
        if topic in self.messages and self.fetcher is not None:
            threading.Timer(0.001, self.fetcher.offer, (topic, self.messages[topic])).start()

    def unsubscribe(self, topic: str) -> None:
        self.unsubscribed.append(topic)


def published(data: bytes = DATA, chunk_size: int = CHUNK) -> dict[str, bytes]:
    manifest, pieces = manifest_for(data, chunk_size)
    base = bundle_topic(FLEET, hashlib.sha256(data).hexdigest())
    return {f"{base}/manifest": manifest, **{f"{base}/{i}": piece for i, piece in enumerate(pieces)}}


def fetcher_for(messages: dict[str, bytes], tmp_path, stall: float = 5.0) -> tuple[ChunkFetcher, Retained]:
    broker = Retained(messages)
    fetcher = ChunkFetcher(broker, FLEET, tmp_path, window=3, stall=stall)
    broker.fetcher = fetcher
    return fetcher, broker


def test_a_bundle_comes_whole_chunk_by_chunk_and_leaves_nothing_behind(tmp_path):
    fetcher, broker = fetcher_for(published(), tmp_path)
    notes: list[str] = []
    assert b"".join(fetcher.fetch(SHA, notes.append)) == DATA
    assert notes == ["over MQTT: 10 chunks of 1 KiB, 0 already on the device"]
    assert not fetcher.partial(SHA).exists()
    chunk_topics = [t for t in broker.subscribed if not t.endswith("/manifest")]
    assert len(chunk_topics) == 10  # each chunk asked for once
    assert sorted(broker.unsubscribed) == sorted(broker.subscribed)  # nothing left subscribed


def test_a_fetch_resumes_with_the_chunks_already_on_the_device(tmp_path):
    messages = published()
    fetcher, broker = fetcher_for(messages, tmp_path)
    folder = fetcher.partial(SHA)
    folder.mkdir()
    base = bundle_topic(FLEET, SHA)
    for i in range(6):
        (folder / str(i)).write_bytes(messages[f"{base}/{i}"])
    (folder / "2").write_bytes(b"half-written")  # a chunk that does not match its hash is fetched again
    notes: list[str] = []
    assert b"".join(fetcher.fetch(SHA, notes.append)) == DATA
    assert notes == ["over MQTT: 10 chunks of 1 KiB, 5 already on the device"]
    assert sorted(t.rsplit("/", 1)[1] for t in broker.subscribed if not t.endswith("manifest")) == [
        "2",
        "6",
        "7",
        "8",
        "9",
    ]


def test_a_chunk_that_does_not_match_its_hash_fails_naming_it_and_keeps_the_good_ones(tmp_path):
    messages = published()
    base = bundle_topic(FLEET, SHA)
    messages[f"{base}/4"] = b"x" * CHUNK
    fetcher, _ = fetcher_for(messages, tmp_path)
    with pytest.raises(BundleError, match=r"chunk 4 of bundle .* does not match its hash"):
        b"".join(fetcher.fetch(SHA))
    kept = sorted(int(p.name) for p in fetcher.partial(SHA).iterdir() if p.name.isdigit())
    assert 4 not in kept
    assert {0, 1, 2, 3} <= set(kept)


def test_chunks_that_stop_coming_fail_after_the_stall_time_and_stay_for_the_next_try(tmp_path):
    messages = published()
    base = bundle_topic(FLEET, SHA)
    for i in range(7, 10):
        del messages[f"{base}/{i}"]
    fetcher, broker = fetcher_for(messages, tmp_path, stall=0.3)
    with pytest.raises(BundleError, match=r"stopped coming \(7 of 10 here, none for 0.3 s\): deploy again"):
        b"".join(fetcher.fetch(SHA))
    assert sorted(broker.unsubscribed) == sorted(broker.subscribed)
    assert len([p for p in fetcher.partial(SHA).iterdir() if p.name.isdigit()]) == 7


def test_no_manifest_fails_with_what_to_do(tmp_path):
    fetcher, _ = fetcher_for({}, tmp_path, stall=0.2)
    with pytest.raises(BundleError, match=r"no bundle manifest on .*: publish the bundle"):
        b"".join(fetcher.fetch(SHA))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d.update(size=d["size"] + CHUNK), "inconsistent"),
        (lambda d: d.update(sha256="0" * 64), "inconsistent"),
        (lambda d: d["chunks"].pop(), "inconsistent"),
        (lambda d: d.update(chunk_size=0), "inconsistent"),
        (lambda d: d.update(schema="other/1"), "not an edgekit.bundle-chunks/1 document"),
    ],
)
def test_a_manifest_that_does_not_add_up_is_refused(change, why):
    import orjson

    manifest, _ = manifest_for(DATA, CHUNK)
    doc = orjson.loads(manifest)
    change(doc)
    with pytest.raises(BundleError, match=why):
        ChunkManifest.parse(orjson.dumps(doc), SHA)


def test_a_device_without_room_for_the_bundle_says_so_before_fetching(tmp_path, monkeypatch):
    fetcher, broker = fetcher_for(published(), tmp_path)
    monkeypatch.setattr(chunks_module.shutil, "disk_usage", lambda _p: type("U", (), {"free": 100})())
    with pytest.raises(BundleError, match=r"not enough disk .*0.0 MB free .*: free some space"):
        b"".join(fetcher.fetch(SHA))
    assert [t for t in broker.subscribed if not t.endswith("manifest")] == []


def test_the_deployers_fetch_takes_mqtt_sources_here_and_checks_the_hash_it_names(tmp_path):
    fetcher, _ = fetcher_for(published(), tmp_path)
    assert b"".join(fetcher.fetch_command(DeployCommand("a", mqtt_source(SHA), SHA), lambda _d: None)) == DATA
    with pytest.raises(BundleError, match="sha256 is not the one in its source"):
        fetcher.fetch_command(DeployCommand("b", mqtt_source(SHA), "1" * 64), lambda _d: None)
    local = tmp_path / "b.edgebundle"
    local.write_bytes(b"plain")
    with pytest.raises(BundleError, match="never taken from the network"):  # a path on the device: never
        b"".join(fetcher.fetch_command(DeployCommand("c", str(local)), lambda _d: None))


def test_a_manifest_whose_size_is_not_the_signed_one_is_refused_before_any_chunk(tmp_path):
    fetcher, broker = fetcher_for(published(), tmp_path)
    with pytest.raises(BundleError, match=f"says {len(DATA)} bytes, the signed command 100"):
        b"".join(fetcher.fetch_command(DeployCommand("a", mqtt_source(SHA), SHA, 100), lambda _d: None))
    assert [t for t in broker.subscribed if not t.endswith("manifest")] == []
    assert not fetcher.partial(SHA).exists()


def test_a_new_fetch_removes_the_chunks_of_an_abandoned_one(tmp_path):
    abandoned = tmp_path / f".partial-{'b' * 64}"
    abandoned.mkdir()
    (abandoned / "0").write_bytes(b"x" * 1000)
    fetcher, _ = fetcher_for(published(), tmp_path)
    assert b"".join(fetcher.fetch(SHA)) == DATA
    assert not abandoned.exists()
