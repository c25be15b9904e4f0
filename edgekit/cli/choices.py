"""Options that take one of a fixed set of names: the sets, as ``str`` enums, and how typer parses them.

``--help`` lists each set, and a name outside it is refused while the command line is parsed, before any
work starts, in the house's words: ``--prefer 'speed' is unknown: choose from latency, size``
(:func:`option`; :mod:`edgekit.cli.usage_errors` prints it as one line). Each set mirrors the library's own
tuple, which the library still checks for callers that do not come through the command line;
``tests/edgekit/cli/test_choices.py`` fails when the two differ. They are spelled out here, not imported,
so that ``edgekit --help`` loads no compression code.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from collections.abc import Callable


class Prefer(str, enum.Enum):
    """``--prefer``: among variants meeting the budget (``edgekit.auto.PREFERENCES``)."""

    LATENCY = "latency"
    SIZE = "size"


class Cleanup(str, enum.Enum):
    """``--cleanup``: the graph clean-up (``edgekit.passes.cleanup.CLEANUP_METHODS``)."""

    ONNXSLIM = "onnxslim"
    ORT_BASIC = "ort-basic"
    NONE = "none"


class CalibrationMethod(str, enum.Enum):
    """``--calibration-method``: static INT8 ranges (``edgekit.passes.quantize_static.CALIBRATION_METHODS``)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class TfliteLayout(str, enum.Enum):
    """``--tflite-layout``: TFLite image inputs and outputs (``edgekit.tflite.config.IO_LAYOUTS``)."""

    CHANNELS_LAST = "channels-last"
    ONNX = "onnx"


class Board(str, enum.Enum):
    """``--target``: a board's profile (``edgekit_runtime.targets.TARGETS``)."""

    RPI4 = "rpi4"
    RPI5 = "rpi5"
    RPI_ZERO2 = "rpi-zero2"
    JETSON_ORIN = "jetson-orin"
    X86 = "x86"


_Choice = TypeVar("_Choice", bound=enum.Enum)


class UnknownChoiceError(typer.BadParameter):
    """A name outside an option's set; its message names the option, the name and the set."""

    #: the message says what to do: no "(see ... --help)" after it
    see_help = False

    def format_message(self) -> str:
        """The message alone: it already names the option."""
        return self.message


def names(kind: type[enum.Enum]) -> str:
    """``latency, size``."""
    return ", ".join(str(member.value) for member in kind)


def option(kind: type[_Choice], flag: str) -> dict[str, Any]:
    """``typer.Option`` keywords for ``flag``, one of ``kind``: the parser, and ``[a|b]`` in ``--help``."""

    def parse(value: Any) -> _Choice:  # noqa: ANN401  (the text, or a member already)
        if isinstance(value, kind):
            return value
        try:
            return kind(value)
        except ValueError:
            raise UnknownChoiceError(f"{flag} '{value}' is unknown: choose from {names(kind)}") from None

    parser: Callable[[Any], _Choice] = parse
    return {"parser": parser, "metavar": f"[{'|'.join(str(m.value) for m in kind)}]"}
