"""Fixtures every edgekit unit test may use."""

from __future__ import annotations

import pytest

from edgekit.passes.base import PassContext
from edgekit_runtime.cpu import CpuInfo

#: an x86 CPU with AVX2 and no VNNI: the one where INT8 needs reduce_range
AVX2_CPU = CpuInfo(arch="x86_64", flags=frozenset({"avx2"}), cores=2)


@pytest.fixture
def ctx(tmp_path) -> PassContext:
    """A pass context with a scratch folder, an AVX2 CPU and no calibration data."""
    return PassContext(workdir=tmp_path, cpu=AVX2_CPU)
