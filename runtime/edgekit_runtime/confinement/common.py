"""What both readers of :mod:`edgekit_runtime.confinement` share: how far they read, and how they refuse."""

from __future__ import annotations

from dataclasses import dataclass

FIX = "rebuild the bundle from a self-contained model"


@dataclass(frozen=True)
class Limits:
    """How far the check reads before it gives up (and refuses)."""

    #: nested ONNX messages (a TFLite model's tables nest three deep at most); 100 is protobuf's own limit
    max_depth: int = 100
    #: fields read in all; a real model needs a few per node and tensor
    max_fields: int = 20_000_000


class Refusal(Exception):  # noqa: N818  (internal: becomes an UnsafeModelError naming the model)
    """Why a reader stopped: the ``UnsafeModelError`` reason, what the model does, and the fix."""

    def __init__(self, reason: str, what: str, fix: str = FIX) -> None:
        """Keep the three parts of the message."""
        super().__init__(what)
        self.reason, self.what, self.fix = reason, what, fix


def malformed(kind: str, detail: str) -> Refusal:
    """The refusal of bytes a reader cannot follow: a model not known to be confined."""
    return Refusal("malformed", f"is not a well-formed {kind} file ({detail}), so it cannot be checked")


def printable(raw: bytes, limit: int = 80) -> str:
    """Bytes from the model, safe to print in one line: decoded, control characters replaced, shortened."""
    text = raw[: limit * 4].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
