"""Bundle versions compared as versions, not as text: ``1.10.0`` is newer than ``1.9.2`` (the downgrade check).

A version is a release, dot-separated whole numbers (``1``, ``1.2``, ``2024.05.01``; a leading ``v`` is dropped,
missing trailing parts count as 0), then optionally a pre-release after ``-``, ``.`` or nothing (``1.0.0-rc.1``,
``1.0rc1``, ``2.0.0-beta``) and build metadata after ``+`` (ignored, as SemVer says). A pre-release comes before its
release (``1.0.0-rc.1 < 1.0.0``); pre-release identifiers compare part by part, numbers as numbers and below words
(SemVer 2.0.0, section 11). That orders SemVer and the common PEP 440 forms the same way as their own rules do.
Anything else (``latest``, an empty string) cannot be compared: :func:`compare_versions` returns ``None``.
"""

from __future__ import annotations

import re

_VERSION = re.compile(
    r"^[vV]?(?P<release>\d+(?:\.\d+)*)(?:[-.]?(?P<pre>[0-9A-Za-z][0-9A-Za-z.-]*))?(?:\+[0-9A-Za-z.-]+)?$"
)
#: longest version text compared (a manifest's version is free text)
MAX_LENGTH = 128


def _key(version: str) -> tuple[tuple[int, ...], tuple[tuple[int, int | str], ...] | None] | None:
    match = _VERSION.match(version) if len(version) <= MAX_LENGTH else None
    if match is None:
        return None
    release = tuple(int(part) for part in match["release"].split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre = match["pre"]
    if pre is None:
        return release, None
    parts = [p for p in re.split(r"[.-]|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", pre) if p]
    return release, tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts)


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b``; ``None`` when either is not a version."""
    ka, kb = _key(a), _key(b)
    if ka is None or kb is None:
        return None
    (ra, pa), (rb, pb) = ka, kb
    if ra != rb:
        return -1 if ra < rb else 1
    if pa == pb:
        return 0
    if pa is None:  # a release is newer than its pre-releases
        return 1
    if pb is None:
        return -1
    return -1 if pa < pb else 1
