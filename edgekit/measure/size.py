"""Size on disk, raw and compressed (what a bundle or an over-the-air update costs)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """Bytes raw and after DEFLATE (level 9, as zip would store them)."""

    raw: int
    zipped: int

    @classmethod
    def of(cls, data: bytes) -> Size:
        """Measure serialised model bytes."""
        return cls(len(data), len(zlib.compress(data, 9)))

    def to_json(self) -> dict[str, int]:
        """Serialisable form."""
        return {"raw_bytes": self.raw, "zipped_bytes": self.zipped}
