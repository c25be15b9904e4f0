"""The TFLite reader of :mod:`edgekit_runtime.confinement`: one bounded walk over a ``Model`` FlatBuffer."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from edgekit_runtime.confinement.common import Limits, Refusal, malformed, printable

if TYPE_CHECKING:
    from collections.abc import Iterator

#: custom operators LiteRT's default resolver registers itself (``tflite/kernels/register.cc``), and the MediaPipe
#: ones its XNNPACK delegate runs; every other needs a library (Flex ops need TensorFlow's)
LITERT_CUSTOM_OPS = frozenset(
    {
        "TFLite_Detection_PostProcess",
        "Mfcc",
        "AudioSpectrogram",
        "NumericVerify",
        "Convolution2DTransposeBias",
        "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D",
    }
)
#: registered custom ops whose kernels parse their options at load without checking they are there
_OPTIONS_READ_AT_LOAD = frozenset({"TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram", "NumericVerify"})

# -------------------------------------------------------------------------------------------

_TFLITE_IDENTIFIER = b"TFL3"
_CUSTOM = 32  # BuiltinOperator.CUSTOM
# schema.fbs field ids
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 1, 2, 4
_MODEL_EXTERNAL_GROUPS, _MODEL_EXTERNAL_BUFFERS = 8, 9
_CODE_DEPRECATED, _CODE_CUSTOM, _CODE_BUILTIN = 0, 1, 3
_SUBGRAPH_OPERATORS = 3
_OP_OPCODE, _OP_CUSTOM_OPTIONS, _OP_LARGE_OFFSET, _OP_LARGE_SIZE = 0, 5, 9, 10
_BUFFER_OFFSET, _BUFFER_SIZE = 1, 2

_LITERT_CUSTOM_CODES = frozenset(code.encode() for code in LITERT_CUSTOM_OPS)
_I8, _U16, _U32, _I32, _U64 = (struct.Struct(f) for f in ("<b", "<H", "<I", "<i", "<Q"))


class _Tflite:
    """One walk over a TFLite ``Model`` table: op codes, operators, buffers; every offset checked first."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.buf = data
        self.size = len(data)
        self.limits = limits
        self.left = limits.max_fields

    def check(self) -> None:
        if self.size < 8 or self.buf[4:8] != _TFLITE_IDENTIFIER:  # noqa: PLR2004
            raise malformed("TFLite", f"no '{_TFLITE_IDENTIFIER.decode()}' identifier")
        model = self.root()
        if self.vector_length(model, _MODEL_EXTERNAL_GROUPS) or self.vector_length(model, _MODEL_EXTERNAL_BUFFERS):
            raise Refusal(
                "external-buffer",
                "keeps weights in external buffer files, which LiteRT would read from outside the bundle",
                "convert the model with its weights inside and rebuild the bundle",
            )
        codes = [self.opcode(t) for t in self.tables(model, _MODEL_OPERATOR_CODES)]
        for subgraph in self.tables(model, _MODEL_SUBGRAPHS):
            for index, op in enumerate(self.tables(subgraph, _SUBGRAPH_OPERATORS)):
                self.operator(op, index, codes)
        for index, buffer in enumerate(self.tables(model, _MODEL_BUFFERS)):
            offset = self.scalar(buffer, _BUFFER_OFFSET, _U64)
            if offset > 1:  # LiteRT's convention: 0 and 1 mean the data is inline, if any
                self.inside(offset, self.scalar(buffer, _BUFFER_SIZE, _U64), f"buffer {index}")

    def opcode(self, table: int) -> str | None:
        """The custom code of a custom operator (refused unless LiteRT registers it), ``None`` for a builtin."""
        deprecated = self.scalar(table, _CODE_DEPRECATED, _I8)
        builtin = self.scalar(table, _CODE_BUILTIN, _I32)
        if max(deprecated, builtin) != _CUSTOM:  # LiteRT's rule: the larger of the two fields
            return None
        raw = self.string(table, _CODE_CUSTOM)
        code = printable(raw)
        if raw not in _LITERT_CUSTOM_CODES:  # the exact bytes: LiteRT stops a name at its first NUL
            flex = " (a TensorFlow op through the Flex delegate)" if raw.startswith(b"Flex") else ""
            raise Refusal(
                "custom-op",
                f"uses custom operator '{code}'{flex}, which LiteRT does not have built in (it needs an op library)",
                "edgekit-runtime loads no op libraries: convert the model with builtin TFLite ops",
            )
        return code

    def operator(self, table: int, index: int, codes: list[str | None]) -> None:
        large = self.scalar(table, _OP_LARGE_OFFSET, _U64)
        if large > 1:
            self.inside(large, self.scalar(table, _OP_LARGE_SIZE, _U64), f"the custom options of operator {index}")
        opcode = self.scalar(table, _OP_OPCODE, _U32)
        if opcode >= len(codes):
            raise malformed("TFLite", f"operator {index} has op code {opcode} of {len(codes)}")
        code = codes[opcode]
        if code in _OPTIONS_READ_AT_LOAD and large <= 1 and self.field(table, _OP_CUSTOM_OPTIONS) is None:
            raise Refusal(
                "custom-op",
                f"has custom operator {index} ('{code}') without its options, which LiteRT reads unchecked at load",
                "convert the model again; its converter writes them",
            )

    def inside(self, offset: int, size: int, what: str) -> None:
        if offset + size > self.size:
            raise Refusal(
                "outside-file",
                f"points {what} at bytes {offset}..{offset + size}, past the end of its {self.size}-byte file",
                "rebuild the bundle from an intact model",
            )

    # the format -------------------------------------------------------------------------------------------------

    def read(self, fmt: struct.Struct, pos: int) -> int:
        if pos < 0 or pos + fmt.size > self.size:
            raise malformed("TFLite", f"an offset points past the end of the file ({pos})")
        value: int = fmt.unpack_from(self.buf, pos)[0]
        return value

    def root(self) -> int:
        return self.table(self.read(_U32, 0))

    def table(self, pos: int) -> int:
        """``pos`` if a table starts there whose vtable is in the file."""
        self.left -= 1
        if self.left < 0:
            raise Refusal(
                "too-large",
                f"has more than {self.limits.max_fields} tables, more than this check reads",
                "split or simplify the model",
            )
        vtable = pos - self.read(_I32, pos)
        length = self.read(_U16, vtable)
        if length < 4 or length % 2 or vtable + length > self.size:  # noqa: PLR2004
            raise malformed("TFLite", f"a table at byte {pos} has a broken vtable")
        return pos

    def field(self, table: int, field_id: int) -> int | None:
        """Where field ``field_id`` of ``table`` is stored, or ``None`` when it is absent."""
        vtable = table - self.read(_I32, table)
        slot = 4 + 2 * field_id
        if slot >= self.read(_U16, vtable):
            return None
        offset = self.read(_U16, vtable + slot)
        return table + offset if offset else None

    def scalar(self, table: int, field_id: int, fmt: struct.Struct) -> int:
        pos = self.field(table, field_id)
        return 0 if pos is None else self.read(fmt, pos)

    def vector(self, table: int, field_id: int, item: int) -> tuple[int, int]:
        """``(first element's position, length)`` of a vector field, checked to lie in the file."""
        pos = self.field(table, field_id)
        if pos is None:
            return 0, 0
        start = pos + self.read(_U32, pos)
        length = self.read(_U32, start)
        if start + 4 + length * item > self.size:
            raise malformed("TFLite", f"a vector at byte {start} runs past the end of the file")
        return start + 4, length

    def vector_length(self, table: int, field_id: int) -> int:
        return self.vector(table, field_id, 4)[1]

    def tables(self, table: int, field_id: int) -> Iterator[int]:
        start, length = self.vector(table, field_id, 4)
        for i in range(length):
            element = start + 4 * i
            yield self.table(element + self.read(_U32, element))

    def string(self, table: int, field_id: int) -> bytes:
        start, length = self.vector(table, field_id, 1)
        return self.buf[start : start + length]


def check_tflite(data: bytes, limits: Limits) -> None:
    """Walk a TFLite ``Model``'s bytes; :class:`Refusal` at the first thing that reaches outside them."""
    _Tflite(data, limits).check()
