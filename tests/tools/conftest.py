"""What the tests of ``tools/`` share: loading a tool script as a module (:mod:`tests.tool_scripts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.tool_scripts import load_tool as _load

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType


@pytest.fixture(scope="session")
def load_tool() -> Callable[[str], ModuleType]:
    """:func:`tests.tool_scripts.load_tool`: ``load_tool("wheel_matrix")``."""
    return _load
