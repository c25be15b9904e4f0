"""Option values: ``--input-shape``, ``--state``, ``--labels``, ``--created``, and the bundle options.

``edgekit compress`` and ``edgekit bundle pack``/``convert`` parse these the same way, so they live here,
where both command modules import them without importing each other.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from edgekit.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from edgekit.bundle.pack import BundleOptions


def shapes(values: list[str]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Parse ``--input-shape NAME=D1,D2,...`` options."""
    parsed = []
    for item in values:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise ConfigError(f"--input-shape '{item}' is not NAME=D1,D2,...: write it like input=1,3,224,224")
        parsed.append((name, shape))
    return tuple(parsed)


def state_pairs(value: str | None) -> tuple[tuple[str, str], ...] | None:
    """Parse ``--state INPUT:OUTPUT,...`` (``none``: no state; not given: ``None``, found from the model)."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return ()
    pairs = []
    for item in value.split(","):
        name, sep, out = (part.strip() for part in item.partition(":"))
        if not sep or not name or not out or ":" in out:
            raise ConfigError(f"--state '{value}' is not INPUT:OUTPUT pairs: write it like h:hn,c:cn (or none)")
        pairs.append((name, out))
    return tuple(pairs)


def read_labels(path: Path | None) -> tuple[str, ...] | None:
    """Class labels: a text file with one per line, or a JSON list."""
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(f"--labels file '{path}' does not exist: give a text file with one label per line")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            labels = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--labels file '{path}' is not valid JSON: give a JSON list of strings") from exc
        if not isinstance(labels, list):
            raise ConfigError(f"--labels file '{path}' is not a JSON list: give a list of strings")
        return tuple(str(x) for x in labels)
    found = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not found:
        raise ConfigError(f"--labels file '{path}' is empty: write one label per line, in output order")
    return found


def _created(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--created '{value}' is not a date: write it like 2026-11-24T12:00:00Z") from exc
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def bundle_options(
    name: str | None,
    version: str,
    labels: Path | None,
    sign_key: Path | None,
    created: str | None = None,
    preprocess: str | None = None,
) -> BundleOptions:
    """The bundle options the commands share."""
    from edgekit.bundle.pack import BundleOptions
    from edgekit.images import parse_preprocess

    return BundleOptions(
        name=name,
        version=version,
        labels=read_labels(labels),
        preprocessing=parse_preprocess(preprocess).to_json() if preprocess else None,
        created=_created(created),
        signing_key=sign_key,
    )
