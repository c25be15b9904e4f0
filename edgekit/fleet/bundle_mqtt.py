"""A rollout's bundle over the broker alone: retained chunks and their manifest.

The format, and the device's side, are in :mod:`edgekit_runtime.fleet.chunks`.

``with PublishedBundle(link, bundle) as source:`` publishes the chunks, then the manifest, retained at QoS 1,
and waits for the broker to take each; ``source`` (``mqtt:SHA256``) goes in the deploy commands. On the way out
the retained copies are cleared (an empty retained message on each topic), so the broker does not keep a
bundle after its rollout. A rollout whose operator was killed leaves them until the same bundle is rolled out
again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.errors import ConfigError, FleetError
from edgekit_runtime.fleet.chunks import MAX_CHUNK, bundle_topic, manifest_for, mqtt_source

if TYPE_CHECKING:
    from types import TracebackType

    from edgekit.fleet.bundle_source import LocalBundle
    from edgekit.fleet.link import FleetLink

DEFAULT_CHUNK_KIB = 256
#: chunks published before waiting for the broker's PUBACKs
BATCH = 16


def chunk_bytes(kib: int) -> int:
    """``--chunk-kib`` in bytes, checked."""
    if not 1 <= kib <= MAX_CHUNK // 1024:
        raise ConfigError(f"--chunk-kib {kib}: give 1 to {MAX_CHUNK // 1024} (KiB; 256 suits most brokers)")
    return kib * 1024


class PublishedBundle:
    """The bundle retained on the broker for as long as the ``with`` block runs."""

    def __init__(self, link: FleetLink, bundle: LocalBundle, chunk_size: int = DEFAULT_CHUNK_KIB * 1024) -> None:
        """Get ready to publish ``bundle`` on ``link``'s fleet in ``chunk_size`` pieces."""
        self.link = link
        self.bundle = bundle
        self.chunk_size = chunk_size
        self.base = bundle_topic(link.fleet, bundle.sha256)
        self.chunks = 0

    @property
    def source(self) -> str:
        """What deploy commands name as the source."""
        return mqtt_source(self.bundle.sha256)

    def _topics(self) -> list[str]:
        return [*(f"{self.base}/{i}" for i in range(self.chunks)), f"{self.base}/manifest"]

    def __enter__(self) -> str:
        """Publish the chunks, then the manifest; the deploy source."""
        manifest, pieces = manifest_for(self.bundle.path.read_bytes(), self.chunk_size)
        self.chunks = len(pieces)
        for start in range(0, len(pieces), BATCH):
            batch = [(f"{self.base}/{i}", pieces[i]) for i in range(start, min(start + BATCH, len(pieces)))]
            self.link.publish(batch, 60.0, retain=True, what=f"chunks of {self.bundle.path.name}")
        self.link.publish([(f"{self.base}/manifest", manifest)], retain=True, what="the bundle's manifest")
        return self.source

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Clear the retained copies (best effort when the broker is gone)."""
        try:
            self.link.publish([(topic, b"") for topic in self._topics()], 30.0, retain=True, what="the clean-up")
        except FleetError:
            if kind is None:  # a rollout's own error matters more than a clean-up's
                raise
