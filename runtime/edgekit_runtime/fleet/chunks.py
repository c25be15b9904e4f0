"""A bundle over MQTT alone: retained chunks, a hash for each, and resume after a cut (issue 7).

The operator (``edgekit fleet deploy``) publishes, retained at QoS 1, under ``edgekit/{fleet}/@bundles/{sha256}``
(``@`` cannot start a device name, so these topics never meet a device's):

- ``…/{i}`` for i = 0, 1, …: the bundle's bytes, ``chunk_size`` bytes each (the last one shorter);
- ``…/manifest``, last: ``{"schema": "edgekit.bundle-chunks/1", "sha256", "size", "chunk_size",
  "chunks": [sha256 of each chunk]}``.

A deploy command with ``"source": "mqtt:SHA256"`` makes the device read the manifest, then subscribe to the
chunks it lacks, a few at a time (the broker sends a retained message on subscribe; the device unsubscribes
once a chunk is in). Each chunk is checked against its hash in the manifest and written crash-safely to
``models/.partial-SHA256/`` before the next is asked for, so a deploy that is cut off (broker gone, device
rebooted) resumes where it stopped when it is sent again: chunks already on the device are checked, not
fetched. A chunk that does not match its hash fails the deploy at once, naming the chunk (the retained copy is
damaged: publish the bundle again); the whole bundle is still checked against the command's sha256 as it is
stored, and against its signature after that.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import orjson

from edgekit_runtime.errors import BundleError
from edgekit_runtime.fleet.deploy_fetch import fetch_source
from edgekit_runtime.fleet.models import PARTIAL, SHA256, remove_partials, write_atomically

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from edgekit_runtime.fleet.deploy_command import DeployCommand

MANIFEST_SCHEMA = "edgekit.bundle-chunks/1"
SOURCE_PREFIX = "mqtt:"
#: chunks larger than this are refused (a broker's message limit is usually lower anyway)
MAX_CHUNK = 16 << 20


def bundle_topic(fleet: str, sha256: str) -> str:
    """The topic level under which a bundle's manifest and chunks are retained."""
    return f"edgekit/{fleet}/@bundles/{sha256}"


def mqtt_source(sha256: str) -> str:
    """A deploy command's ``source`` for a bundle published over MQTT."""
    return f"{SOURCE_PREFIX}{sha256}"


@dataclass(frozen=True)
class ChunkManifest:
    """What the bundle's chunks are: their size and hashes."""

    sha256: str
    size: int
    chunk_size: int
    chunks: tuple[str, ...]

    @classmethod
    def parse(cls, payload: bytes, sha256: str) -> ChunkManifest:
        """Read and check a manifest; :class:`BundleError` names what is wrong with it."""
        where = f"the chunk manifest of bundle {sha256[:12]}"
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BundleError(f"{where} is not JSON: publish the bundle again") from None
        if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA:
            raise BundleError(f"{where} is not an {MANIFEST_SCHEMA} document: publish it with edgekit fleet deploy")
        size, chunk_size, chunks = doc.get("size"), doc.get("chunk_size"), doc.get("chunks")
        ok = (
            doc.get("sha256") == sha256
            and isinstance(size, int)
            and isinstance(chunk_size, int)
            and 0 < chunk_size <= MAX_CHUNK
            and size > 0
            and isinstance(chunks, list)
            and len(chunks) == -(-size // chunk_size)
            and all(isinstance(c, str) and SHA256.match(c) for c in chunks)
        )
        if not ok:
            raise BundleError(f"{where} is inconsistent (hash, sizes or chunk list): publish the bundle again")
        return cls(sha256, int(size), int(chunk_size), tuple(chunks))  # type: ignore[arg-type]

    def length(self, index: int) -> int:
        """The size of chunk ``index``."""
        return min(self.chunk_size, self.size - index * self.chunk_size)


class Subscriber(Protocol):
    """Where the fetcher asks for topics (the device's MQTT connection)."""

    def subscribe(self, topic: str) -> None:
        """Subscribe (now, and on every later connection)."""

    def unsubscribe(self, topic: str) -> None:
        """Stop subscribing."""


class ChunkFetcher:
    """Fetches bundles published as chunks; :meth:`offer` takes the connection's messages."""

    def __init__(
        self,
        subscriber: Subscriber,
        fleet: str,
        root: Path,
        *,
        window: int = 4,
        stall: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Fetch into ``root`` (the model store's folder).

        ``window``: chunks asked for at once; ``stall``: seconds without a chunk before the fetch gives up
        (it resumes when the deploy is sent again).
        """
        self.subscriber = subscriber
        self.fleet = fleet
        self.root = root
        self.window = max(1, window)
        self.stall = stall
        self.clock = clock
        self._prefix = f"edgekit/{fleet}/@bundles/"
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()

    @property
    def topic_filter(self) -> str:
        """Every bundle topic of the fleet (for routing, not subscribed as such)."""
        return f"{self._prefix}#"

    def offer(self, topic: str, payload: bytes) -> bool:
        """On the MQTT thread: take ``payload`` if ``topic`` is a bundle's (nothing slow here)."""
        if not topic.startswith(self._prefix):
            return False
        self._inbox.put((topic, payload))
        return True

    def fetch_command(self, command: DeployCommand, note: Callable[[str], None]) -> Iterable[bytes]:
        """The deployer's fetch: ``mqtt:SHA256`` sources from here, URLs and paths as before."""
        if not command.source.startswith(SOURCE_PREFIX):
            return fetch_source(command, note)
        sha256 = command.source[len(SOURCE_PREFIX) :]
        if command.sha256 is not None and command.sha256 != sha256:
            raise BundleError(f"the command's sha256 is not the one in its source {command.source}: send it again")
        return self.fetch(sha256, note, size=command.size)

    def partial(self, sha256: str) -> Path:
        """Where the verified chunks of a bundle wait."""
        return self.root / f"{PARTIAL}{sha256}"

    def fetch(
        self, sha256: str, note: Callable[[str], None] = lambda _d: None, *, size: int | None = None
    ) -> Iterator[bytes]:
        """The bundle's bytes, chunk by chunk, once every chunk is here and checked.

        ``size``: the bundle's bytes as the signed command says; a manifest that says otherwise is refused before
        any chunk is fetched. Chunks of other bundles (an abandoned fetch) are removed first: a device keeps the
        chunks of one bundle at most, the one it is fetching.
        """
        if not SHA256.match(sha256):
            raise BundleError(f"'{sha256}' is not a sha256: an mqtt: source is mqtt:<the bundle's sha256>")
        folder = self.partial(sha256)
        remove_partials(self.root, keep=sha256)
        manifest = ChunkManifest.parse(self._one(f"{bundle_topic(self.fleet, sha256)}/manifest"), sha256)
        if size is not None and manifest.size != size:
            raise BundleError(
                f"bundle {sha256[:12]}'s chunk manifest says {manifest.size} bytes, the signed command {size}: "
                "publish the bundle again"
            )
        folder.mkdir(parents=True, exist_ok=True)
        have = {i for i in range(len(manifest.chunks)) if self._verified(folder, manifest, i)}
        self._room(manifest, have)
        note(
            f"over MQTT: {len(manifest.chunks)} chunks of {manifest.chunk_size // 1024} KiB, "
            f"{len(have)} already on the device"
        )
        self._receive(manifest, folder, have)
        for i in range(len(manifest.chunks)):
            yield (folder / str(i)).read_bytes()
        shutil.rmtree(folder, ignore_errors=True)

    def _verified(self, folder: Path, manifest: ChunkManifest, index: int) -> bool:
        try:
            data = (folder / str(index)).read_bytes()
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() == manifest.chunks[index]

    def _room(self, manifest: ChunkManifest, have: set[int]) -> None:
        need = 2 * manifest.size - sum(manifest.length(i) for i in have)  # the chunks, then the assembled bundle
        free = shutil.disk_usage(self.root).free
        if free < need:
            raise BundleError(
                f"not enough disk for bundle {manifest.sha256[:12]}: {need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB "
                "free in the state directory: free some space and deploy again"
            )

    def _one(self, topic: str) -> bytes:
        """The retained message on ``topic``."""
        self.subscriber.subscribe(topic)
        try:
            deadline = self.clock() + self.stall
            while True:
                got = self._next(deadline)
                if got is None:
                    raise BundleError(
                        f"no bundle manifest on {topic} after {self.stall:g} s: publish the bundle "
                        "(edgekit fleet deploy does) and deploy again"
                    )
                if got[0] == topic:
                    return got[1]
        finally:
            self.subscriber.unsubscribe(topic)

    def _next(self, deadline: float) -> tuple[str, bytes] | None:
        wait = deadline - self.clock()
        if wait <= 0:
            return None
        try:
            return self._inbox.get(timeout=wait)
        except queue.Empty:
            return None

    def _receive(self, manifest: ChunkManifest, folder: Path, have: set[int]) -> None:
        base = bundle_topic(self.fleet, manifest.sha256)
        missing = [i for i in range(len(manifest.chunks)) if i not in have]
        asked: dict[str, int] = {}
        try:
            deadline = self.clock() + self.stall
            while missing or asked:
                while missing and len(asked) < self.window:
                    index = missing.pop(0)
                    asked[f"{base}/{index}"] = index
                    self.subscriber.subscribe(f"{base}/{index}")
                got = self._next(deadline)
                if got is None:
                    done = len(manifest.chunks) - len(missing) - len(asked)
                    raise BundleError(
                        f"bundle {manifest.sha256[:12]}'s chunks stopped coming ({done} of {len(manifest.chunks)} "
                        f"here, none for {self.stall:g} s): deploy again to resume"
                    )
                topic, payload = got
                index = asked.pop(topic, -1)
                if index < 0:
                    continue  # a chunk asked for before, sent again: it is in already
                self.subscriber.unsubscribe(topic)
                if len(payload) != manifest.length(index) or (
                    hashlib.sha256(payload).hexdigest() != manifest.chunks[index]
                ):
                    raise BundleError(
                        f"chunk {index} of bundle {manifest.sha256[:12]} does not match its hash in the manifest: "
                        "the published copy is damaged; publish the bundle again and deploy again"
                    )
                write_atomically(folder / str(index), [payload])
                deadline = self.clock() + self.stall
        finally:
            for topic in asked:
                self.subscriber.unsubscribe(topic)


def chunks_of(data: bytes, chunk_size: int) -> list[bytes]:
    """``data`` cut into ``chunk_size`` pieces (the publisher's side of the format)."""
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


def manifest_for(data: bytes, chunk_size: int) -> tuple[bytes, list[bytes]]:
    """The manifest and the chunks that publish ``data``."""
    pieces = chunks_of(data, chunk_size)
    doc = {
        "schema": MANIFEST_SCHEMA,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "chunk_size": chunk_size,
        "chunks": [hashlib.sha256(p).hexdigest() for p in pieces],
    }
    return orjson.dumps(doc), pieces
