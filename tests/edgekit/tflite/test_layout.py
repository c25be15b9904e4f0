from __future__ import annotations

import numpy as np
import pytest

from edgekit.tflite import layout

NHWC = (0, 2, 3, 1)


def test_channels_last_per_rank():
    assert layout.channels_last(4) == NHWC
    assert layout.channels_last(3) == (0, 2, 1)
    assert layout.channels_last(5) == (0, 2, 3, 4, 1)
    assert layout.channels_last(2) == (0, 1)


def test_apply_and_invert_agree_with_numpy():
    x = np.zeros((1, 3, 5, 7))
    assert layout.apply(NHWC, x.shape) == x.transpose(NHWC).shape
    assert layout.invert(NHWC) == tuple(np.argsort(NHWC))


@pytest.mark.parametrize(("src", "dst"), [(NHWC, (0, 1, 2, 3)), ((0, 1, 2, 3), NHWC), ((2, 0, 3, 1), NHWC)])
def test_transpose_perm_turns_one_layout_into_another(src, dst):
    onnx_array = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    held = onnx_array.transpose(src)
    assert np.array_equal(held.transpose(layout.transpose_perm(src, dst)), onnx_array.transpose(dst))


def test_axis_maps_onnx_axes_into_the_layout():
    assert layout.axis(NHWC, 1) == 3
    assert layout.axis(NHWC, -1) == 2


def test_same_memory_order_ignores_size_one_axes():
    assert layout.same_memory_order(NHWC, (1, 64, 1, 1))
    assert not layout.same_memory_order(NHWC, (1, 64, 2, 2))
    assert layout.same_memory_order(NHWC, (1, 1, 4, 4))


def test_drop_and_insert_axes_keep_the_order_of_the_rest():
    assert layout.drop_axes(NHWC, [2, 3]) == (0, 1)
    assert layout.drop_axes(NHWC, [1]) == (0, 1, 2)
    assert layout.insert_axes((0, 1), [0]) == (0, 1, 2)
    perm = layout.insert_axes(NHWC, [2])  # NCHW -> N C 1 H W, held channels-last
    held = layout.apply(perm, (2, 3, 1, 5, 7))
    assert [d for d in held if d != 1] == [2, 5, 7, 3]  # the same memory as the NHWC input: a RESHAPE suffices
