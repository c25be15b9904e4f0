"""Axis permutations: how a TFLite tensor's axes relate to the ONNX tensor it stands for.

Every converted value carries a permutation ``perm``: TFLite axis ``j`` holds ONNX axis
``perm[j]``, so the TFLite shape is ``apply(perm, onnx_shape)``. ONNX image tensors are NCHW and
TFLite's spatial ops want NHWC, whose permutation is :func:`channels_last` (``(0, 2, 3, 1)``).
Ops that do not care about layout (element-wise, Concat, Pad, ReduceMean, Softmax, ...) keep the
permutation of their input and remap the axes they name; ops that do (Conv, pooling) ask for NHWC;
ops that read memory order (Reshape, Flatten, MatMul) ask for the ONNX order, and a ``TRANSPOSE``
is inserted only when the data's order in memory really differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

Perm = tuple[int, ...]


def identity(rank: int) -> Perm:
    """The ONNX order."""
    return tuple(range(rank))


def channels_last(rank: int) -> Perm:
    """NCHW → NHWC (and NCW → NWC, NCDHW → NDHWC); the identity below rank 3."""
    if rank < 3:  # noqa: PLR2004
        return identity(rank)
    return (0, *range(2, rank), 1)


def apply(perm: Perm, values: Sequence[int]) -> tuple[int, ...]:
    """``values`` (one per ONNX axis) in TFLite axis order."""
    return tuple(values[p] for p in perm)


def invert(perm: Perm) -> Perm:
    """The permutation that undoes ``perm``."""
    inverse = [0] * len(perm)
    for j, p in enumerate(perm):
        inverse[p] = j
    return tuple(inverse)


def axis(perm: Perm, onnx_axis: int) -> int:
    """The TFLite axis holding ONNX axis ``onnx_axis`` (negative axes count from the end)."""
    return perm.index(onnx_axis % len(perm))


def transpose_perm(src: Perm, dst: Perm) -> Perm:
    """The ``TRANSPOSE`` permutation that turns a tensor in layout ``src`` into layout ``dst``."""
    where = invert(src)
    return tuple(where[d] for d in dst)


def same_memory_order(perm: Perm, shape: Sequence[int]) -> bool:
    """Whether layout ``perm`` of a tensor of ONNX ``shape`` stores its elements in ONNX order.

    True when the axes longer than 1 come in the same order: ``(N, C, 1, 1)`` stored as
    ``(N, 1, 1, C)`` is the same memory, so a Reshape or Flatten needs no transpose first.
    """
    big = [p for p in perm if shape[p] != 1]
    return big == sorted(big)


def drop_axes(perm: Perm, dropped: Iterable[int]) -> Perm:
    """The layout left when ONNX axes ``dropped`` are removed (Squeeze, reductions without keepdims)."""
    gone = set(dropped)
    renumber = {a: a - sum(1 for g in gone if g < a) for a in perm if a not in gone}
    return tuple(renumber[a] for a in perm if a not in gone)


def insert_axes(perm: Perm, inserted: Iterable[int]) -> Perm:
    """The layout after Unsqueeze inserts size-1 ONNX axes at output positions ``inserted``."""
    new = sorted(set(inserted))
    rank = len(perm) + len(new)
    kept = [a for a in range(rank) if a not in new]  # output axis of each old axis, in order
    out = [kept[a] for a in perm]
    for a in new:
        out.insert(min(a, len(out)), a)
    return tuple(out)
