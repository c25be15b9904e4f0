"""JSON values as NumPy arrays, without NumPy's text arrays: a few kilobytes of JSON must not ask for gigabytes.

``np.asarray`` gives a list holding a string a fixed-width text dtype as wide as its longest element, four
bytes a character, for every element: ``[0.5, 0.5, …, "aaaa…"]`` with a million numbers and one string of a
million characters asks for 4 TB (a 500 on a ``MemoryError``), and a smaller one gets the memory and fills
it. So a JSON value is first made an array of Python objects (a pointer per element, no conversion); if any
element is a string it stays that, and is refused for a numeric input; only string-free values go through
``np.asarray``, whose arrays take at most 8 bytes an element.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit_runtime.errors import HttpError, InvalidInputError

#: what inputs that take text are called: the runtime's dtype name, and the Open Inference Protocol's
TEXT = frozenset({"string", "BYTES"})


def json_array(value: Any, name: str, dtype: str | None) -> np.ndarray:  # noqa: ANN401  (a JSON value)
    """``value`` as ``np.asarray`` makes it, or an array of objects if it holds strings.

    ``dtype`` is what input ``name`` takes (``None``: the model has no such input; the input check says so):
    strings into an input that does not take text are refused here, before any text array is made.
    """
    try:
        objects = np.asarray(value, dtype=object)  # rows of different lengths stay lists
    except (ValueError, TypeError, OverflowError) as exc:  # more than 64 dimensions
        raise _not_rectangular(name, str(exc)) from exc
    kinds = set(map(type, objects.reshape(-1).tolist()))  # (.flat stops at 32 dimensions)
    if list in kinds:
        raise _not_rectangular(name, f"rows of different lengths under dimensions {list(objects.shape)}")
    if str in kinds:
        if dtype is None or dtype in TEXT:
            return objects
        raise InvalidInputError(f"input '{name}' expects {dtype} values, got strings", input_name=name)
    del objects  # a pointer an element: let it go before the real array is made
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:  # pragma: no cover  (found above)
        raise _not_rectangular(name, str(exc)) from exc


def _not_rectangular(name: str, why: str) -> HttpError:
    return HttpError(400, f"input '{name}' is not a rectangular array ({why}): every row needs the same length")
