"""Devices side by side: the JSON ``edgekit-runtime bench`` writes on each, read back on the host.

The format is docs/bench.schema.json (``edgekit.bench/1``); this reads what a comparison needs from it and
refuses, in one line, a file that is not one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from edgekit.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

SCHEMA = "edgekit.bench/1"


@dataclass(frozen=True)
class DeviceResult:
    """One device's bench, as a row of the comparison."""

    file: str
    device: str
    platform: str
    engine: str
    model: str
    sha256: str
    #: batch 1, one engine thread
    p50_ms: float
    p99_ms: float
    #: the thread count with the lowest p50, and that p50
    best_threads: int
    best_p50_ms: float
    samples_per_s: float
    batch: int
    rss_bytes: int | None
    cold_start_s: float | None

    def to_json(self) -> dict[str, Any]:
        """The row as JSON."""
        return asdict(self)


def load_result(path: Path) -> DeviceResult:
    """Read one bench JSON file."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not JSON ({exc}): give the file edgekit-runtime bench wrote", path=path) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise DataError(
            f"{path} is not a bench result ({SCHEMA}, found {found!r}): run edgekit-runtime bench", path=path
        )
    try:
        return _row(path, doc)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(
            f"{path} is a damaged bench result (at {exc}): run edgekit-runtime bench again", path=path
        ) from None


def _row(path: Path, doc: dict[str, Any]) -> DeviceResult:
    platform, model = doc["platform"], doc["model"]
    latency = doc["latency"]
    one = next(t for t in latency if t["threads"] == 1)
    best = min(latency, key=lambda t: float(t["p50_ms"]))
    where = [platform["arch"], platform.get("board") or platform.get("cpu"), f"{platform['cores']} cores"]
    cold = doc.get("cold_start")
    memory = doc.get("memory")
    return DeviceResult(
        file=path.name,
        device=str(doc["device"]),
        platform=", ".join(str(w) for w in where if w),
        engine=f"{model['backend']} {model.get('backend_version') or ''}".strip(),
        model=f"{model['name']} {model['version']}",
        sha256=str(model["sha256"]),
        p50_ms=float(one["p50_ms"]),
        p99_ms=float(one["p99_ms"]),
        best_threads=int(best["threads"]),
        best_p50_ms=float(best["p50_ms"]),
        samples_per_s=float(doc["throughput"]["samples_per_s"]),
        batch=int(doc["throughput"]["batch"]),
        rss_bytes=None if memory is None else int(memory["rss_bytes"]),
        cold_start_s=None if cold is None else float(cold["first_answer_s"]),
    )


def compare(paths: Sequence[Path]) -> tuple[list[DeviceResult], list[str]]:
    """The rows, in the order given, and warnings (different models side by side)."""
    if not paths:
        raise DataError("no bench results: give one or more JSON files edgekit-runtime bench wrote")
    rows = [load_result(p) for p in paths]
    warnings = []
    models = {(r.model, r.sha256) for r in rows}
    if len(models) > 1:
        names = ", ".join(sorted(f"{m} ({s[:12]})" for m, s in models))
        warnings.append(f"the files measured different models ({names}): compare devices on the same bundle")
    return rows, warnings
