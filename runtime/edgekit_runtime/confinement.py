"""A model reaches nothing outside its bundle: refuse, before any engine sees them, models that point elsewhere.

ONNX Runtime and LiteRT both follow references out of the bytes they are given. A model loaded from memory has no
folder, so ONNX Runtime resolves a tensor's relative *external data* location against the process's working
directory (``/`` under systemd): a signed bundle could read any file the service can, and hand it back through
``/predict`` to whoever sends the right input, while its golden self-test passes. :func:`check_confined` reads the
model's bytes itself and refuses (:class:`~edgekit_runtime.errors.UnsafeModelError`), for ONNX:

- a tensor kept as external data (``data_location = EXTERNAL`` or any ``external_data`` entry) anywhere: graph
  initializers, sparse initializers, attribute tensors (a ``Constant``'s ``value``), the subgraphs of ``If``,
  ``Loop`` and ``Scan`` at any depth, model-local functions and training graphs;
- a node in an op domain ONNX Runtime does not have built in (it would need a custom-op library), unless the
  model defines that op as a local function, and ``com.microsoft`` ``PyOp`` (builds with language interop import
  the Python module it names);
- an ``EPContext`` node whose compiled engine is a file beside the model (``embed_mode`` other than 1);
- an ``ort_config`` metadata entry: session settings ONNX Runtime takes from the model when
  ``ORT_LOAD_CONFIG_FROM_MODEL=1``, profiling (a file written to the working directory) among them;
- an ORT-format (FlatBuffer) model, which this check cannot read.

For TFLite: a custom operator LiteRT does not register itself (custom-op and Flex delegate libraries), a
registered one without its options (LiteRT reads them unchecked at load: it crashes), a buffer or custom-options
block whose ``offset``/``size`` lies outside the file, and external weight files (``external_buffer_groups``).

Both readers are small and bounded: they walk the bytes without copying them (weights are skipped by their
length), follow ONNX messages at most :attr:`Limits.max_depth` deep and read at most :attr:`Limits.max_fields`
fields or tables. Bytes they
cannot read are refused too: a model this check cannot follow is not known to be confined. It needs neither the
``onnx`` nor the ``tflite`` package; the field numbers are those of ``onnx/onnx-ml.proto`` (ONNX 1.23) and
LiteRT's ``schema.fbs`` (ai-edge-litert 2.3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit_runtime.errors import UnsafeModelError

if TYPE_CHECKING:
    from collections.abc import Iterator

#: op domains built into ONNX Runtime (``include/onnxruntime/core/graph/constants.h``, and the domains of
#: ``get_all_operator_schema()``); the ONNX training domains are ONNX's own. Any other needs a custom-op library.
ONNX_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.preview.training",
        "ai.onnx.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
    }
)
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

_FIX = "rebuild the bundle from a self-contained model"


@dataclass(frozen=True)
class Limits:
    """How far the check reads before it gives up (and refuses)."""

    #: nested ONNX messages (a TFLite model's tables nest three deep at most); 100 is protobuf's own limit
    max_depth: int = 100
    #: fields read in all; a real model needs a few per node and tensor
    max_fields: int = 20_000_000


def check_confined(data: bytes, backend: str, *, source: str, limits: Limits | None = None) -> None:
    """Refuse ``data`` (a model for ``backend``) if it can reach outside its own bytes; ``source`` names it."""
    reader = _READERS.get(backend)
    if reader is None:
        raise UnsafeModelError(
            f"model '{source}' is for backend '{backend}', which this runtime cannot check: update edgekit-runtime",
            source=source,
            reason="unknown-backend",
        )
    try:
        reader(data, limits or Limits()).check()
    except _Refusal as refusal:
        raise UnsafeModelError(
            f"model '{source}' {refusal.what}: {refusal.fix}", source=source, reason=refusal.reason
        ) from None


class _Refusal(Exception):  # noqa: N818  (internal: becomes an UnsafeModelError naming the model)
    def __init__(self, reason: str, what: str, fix: str = _FIX) -> None:
        super().__init__(what)
        self.reason, self.what, self.fix = reason, what, fix


def _malformed(kind: str, detail: str) -> _Refusal:
    return _Refusal("malformed", f"is not a well-formed {kind} file ({detail}), so it cannot be checked")


def _text(raw: bytes, limit: int = 80) -> str:
    """Bytes from the model, safe to print in one line: decoded, control characters replaced, shortened."""
    text = raw[: limit * 4].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- ONNX: protobuf wire format ------------------------------------------------------------------------------------

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_MAX_FIELD = (1 << 29) - 1
_UINT64 = (1 << 64) - 1

# onnx-ml.proto field numbers
_MODEL_GRAPH, _MODEL_METADATA, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 14, 20, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE = 1, 5, 15
_NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 3, 4, 5, 7
_ATTR_NAME, _ATTR_I, _ATTR_REF = 1, 3, 21
_ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE = frozenset({5, 10}), frozenset({6, 11}), frozenset({22, 23})
_TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNCTION_NAME, _FUNCTION_NODE, _FUNCTION_DOMAIN, _FUNCTION_ATTRIBUTE = 1, 7, 10, 11
_TRAINING_GRAPHS = frozenset({1, 2})
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_ATTR_VALUES = _ATTR_TENSORS | _ATTR_GRAPHS | _ATTR_SPARSE
_ATTR_FIELDS = _ATTR_VALUES | {_ATTR_NAME, _ATTR_REF}
_NODE_FIELDS = frozenset({_NODE_NAME, _NODE_OP_TYPE, _NODE_DOMAIN, _NODE_ATTRIBUTE})
_FUNCTION_FIELDS = frozenset({_FUNCTION_NAME, _FUNCTION_DOMAIN, _FUNCTION_NODE, _FUNCTION_ATTRIBUTE})
_ENTRY_FIELDS = frozenset({_ENTRY_KEY, _ENTRY_VALUE})
_BUILTIN = frozenset(d.encode() for d in ONNX_DOMAINS)
_Span = tuple[int, int]
#: a node's name and op type, as the model spells them
_Node = tuple[bytes, bytes]


def _label(node: _Node | None) -> str:
    if node is None:
        return "the function's default attributes"
    return f"node '{_text(node[0])}' ({_text(node[1])})"


class _Onnx:
    """One walk over a ``ModelProto``'s bytes; each method reads one message, ``[start, end)``."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.buf = data
        self.limits = limits
        self.left = limits.max_fields
        #: (domain, op_type) of nodes outside the built-in domains → the first such node, and where it is
        self.custom: dict[tuple[bytes, bytes], tuple[_Node, str]] = {}
        #: (domain, name) of the model-local functions
        self.functions: set[tuple[bytes, bytes]] = set()

    def check(self) -> None:
        if self.buf[4:8] == b"ORTM":  # ONNX Runtime takes these bytes as an ORT-format model
            raise _Refusal(
                "ort-format", "is an ORT-format model, which cannot be checked", "bundle the .onnx model instead"
            )
        self.model(0, len(self.buf))
        for (domain, op_type), (node, where) in self.custom.items():
            if (domain, op_type) not in self.functions:
                raise _Refusal(
                    "custom-op",
                    f"uses op '{_text(op_type)}' from domain '{_text(domain)}' ({_label(node)} {where}), which ONNX "
                    "Runtime does not have built in (a custom-op library)",
                    "edgekit-runtime loads no op libraries: export the model with standard ONNX ops",
                )

    # the wire format ------------------------------------------------------------------------------------------

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        buf = self.buf
        if pos >= end:
            raise _malformed("ONNX", f"a number runs past the end of its message at byte {pos}")
        byte = buf[pos]
        if byte < 0x80:  # noqa: PLR2004  (one-byte varint: most of them)
            return byte, pos + 1
        value, shift = byte & 0x7F, 7
        pos += 1
        while True:
            if pos >= end:
                raise _malformed("ONNX", f"a number runs past the end of its message at byte {pos}")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:  # noqa: PLR2004
                return value & _UINT64, pos
            shift += 7
            if shift >= 70:  # noqa: PLR2004
                raise _malformed("ONNX", f"a number is longer than 10 bytes at byte {pos}")

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """``(field number, wire type, a, b)``: a varint's value in ``a``, or a length-delimited field's ``[a, b)``.

        Fixed-width fields are skipped: nothing this check looks at has one.
        """
        buf, pos = self.buf, start
        while pos < end:
            self.left -= 1
            if self.left < 0:
                raise _Refusal(
                    "too-large",
                    f"has more than {self.limits.max_fields} fields, more than this check reads",
                    "split or simplify the model",
                )
            tag = buf[pos]  # pos < end <= len(buf)
            tag, pos = (tag, pos + 1) if tag < 0x80 else self.varint(pos, end)  # noqa: PLR2004  (1-byte tags: most)
            number, wire = tag >> 3, tag & 7
            if not 0 < number <= _MAX_FIELD:
                raise _malformed("ONNX", f"field number {number} at byte {pos}")
            if wire == _LEN:
                size, pos = self.varint(pos, end)
                if size > end - pos:
                    raise _malformed("ONNX", f"field {number} at byte {pos} runs past the end of its message")
                yield number, wire, pos, pos + size
                pos += size
            elif wire == _VARINT:
                value, pos = self.varint(pos, end)
                yield number, wire, value, 0
            else:
                pos = self.skip_fixed(pos, end, wire)

    def skip_fixed(self, pos: int, end: int, wire: int) -> int:
        """Past a fixed-width field (nothing this check reads has one); other wire types are refused."""
        if wire not in {_FIXED64, _FIXED32}:  # groups (3, 4), which ONNX never writes, and the invalid 6, 7
            raise _malformed("ONNX", f"wire type {wire} at byte {pos}")
        pos += 8 if wire == _FIXED64 else 4
        if pos > end:
            raise _malformed("ONNX", f"a fixed-width field runs past the end of its message at byte {end}")
        return pos

    def spans(self, start: int, end: int, wanted: frozenset[int]) -> dict[int, list[_Span]]:
        """The length-delimited fields of one message whose numbers are ``wanted``, in order."""
        found: dict[int, list[_Span]] = {}
        for number, wire, a, b in self.fields(start, end):
            if wire == _LEN and number in wanted:
                found.setdefault(number, []).append((a, b))
        return found

    def last(self, found: dict[int, list[_Span]], number: int) -> bytes:
        """A singular string field's value (the last occurrence wins, as protobuf parses it)."""
        spans = found.get(number)
        if not spans:
            return b""
        a, b = spans[-1]
        return self.buf[a:b]

    def deeper(self, depth: int) -> int:
        if depth > self.limits.max_depth:
            raise _Refusal(
                "too-large",
                f"nests messages more than {self.limits.max_depth} deep, more than this check (or protobuf) reads",
                "flatten the model's subgraphs",
            )
        return depth + 1

    # the messages -----------------------------------------------------------------------------------------------

    def model(self, start: int, end: int) -> None:
        for number, wire, a, b in self.fields(start, end):
            if wire != _LEN:
                continue
            if number == _MODEL_GRAPH:
                self.graph(a, b, 1, "in the main graph")
            elif number == _MODEL_FUNCTIONS:
                self.function(a, b, 1)
            elif number == _MODEL_TRAINING:
                for span in self.spans(a, b, _TRAINING_GRAPHS).values():
                    for ga, gb in span:
                        self.graph(ga, gb, 2, "in a training graph")
            elif number == _MODEL_METADATA:
                entry = self.spans(a, b, _ENTRY_FIELDS)
                if self.last(entry, _ENTRY_KEY) == b"ort_config":
                    raise _Refusal(
                        "session-config",
                        "carries ONNX Runtime session settings in its 'ort_config' metadata (read when "
                        "ORT_LOAD_CONFIG_FROM_MODEL=1; profiling among them writes files)",
                        "remove the 'ort_config' metadata entry and rebuild the bundle",
                    )

    def graph(self, start: int, end: int, depth: int, where: str) -> None:
        depth = self.deeper(depth)
        for number, wire, a, b in self.fields(start, end):
            if wire != _LEN:
                continue
            if number == _GRAPH_NODE:
                self.node(a, b, depth, where)
            elif number == _GRAPH_INITIALIZER:
                self.tensor(a, b, depth, "initializer", where)
            elif number == _GRAPH_SPARSE:
                self.sparse(a, b, depth, "sparse initializer", where)

    def node(self, start: int, end: int, depth: int, where: str) -> None:
        depth = self.deeper(depth)
        found = self.spans(start, end, _NODE_FIELDS)
        domain, op_type = self.last(found, _NODE_DOMAIN), self.last(found, _NODE_OP_TYPE)
        node = (self.last(found, _NODE_NAME), op_type)
        if domain not in _BUILTIN or (domain == b"com.microsoft" and op_type == b"PyOp"):
            self.custom.setdefault((domain, op_type), (node, where))  # PyOp imports the Python module it names
        embed_mode: int | None = None
        for a, b in found.get(_NODE_ATTRIBUTE, []):
            embed_mode = self.attribute(a, b, depth, node=node, where=where, embed_mode=embed_mode)
        if domain == b"com.microsoft" and op_type == b"EPContext" and embed_mode not in {None, 1}:
            raise _Refusal(
                "ep-context-file",
                f"has an EPContext {_label(node)} {where} whose compiled engine is a file beside the model "
                "(embed_mode is not 1)",
                "embed the engine (embed_mode=1), or bundle the plain ONNX model and let the device compile it",
            )

    def attribute(
        self, start: int, end: int, depth: int, *, node: _Node | None, where: str, embed_mode: int | None
    ) -> int | None:
        """Walk one attribute's tensors and graphs; return ``embed_mode`` as it stands after it (-1: a reference)."""
        depth = self.deeper(depth)
        found: dict[int, list[_Span]] = {}
        value = 0
        for number, wire, a, b in self.fields(start, end):
            if wire == _LEN and number in _ATTR_FIELDS:
                found.setdefault(number, []).append((a, b))
            elif wire == _VARINT and number == _ATTR_I:
                value = a
        name = self.last(found, _ATTR_NAME)
        if found.keys() & _ATTR_VALUES:  # the words for a refusal, only where one can happen
            inside = f"in attribute '{_text(name)}' of {_label(node)}, {where}"
            for number in sorted(found.keys() & _ATTR_VALUES):
                for a, b in found[number]:
                    if number in _ATTR_TENSORS:
                        self.tensor(a, b, depth, "tensor", inside)
                    elif number in _ATTR_SPARSE:
                        self.sparse(a, b, depth, "sparse tensor", inside)
                    else:
                        self.graph(a, b, depth, f"in subgraph '{_text(name)}' of {_label(node)}")
        if name == b"embed_mode":
            return -1 if _ATTR_REF in found else value
        return embed_mode

    def tensor(self, start: int, end: int, depth: int, kind: str, where: str) -> None:
        self.deeper(depth)
        name, location, external = b"", b"", False
        for number, wire, a, b in self.fields(start, end):
            if number == _TENSOR_NAME and wire == _LEN:
                name = self.buf[a:b]
            elif number == _TENSOR_LOCATION and (wire == _LEN or a != 0):
                external = True
            elif number == _TENSOR_EXTERNAL:
                external = True
                if wire == _LEN:
                    entry = self.spans(a, b, _ENTRY_FIELDS)
                    if self.last(entry, _ENTRY_KEY) == b"location":
                        location = self.last(entry, _ENTRY_VALUE)
        if external:
            place = f"the external file '{_text(location)}'" if location else "an external file"
            raise _Refusal(
                "external-data",
                f"keeps {kind} '{_text(name)}' ({where}) in {place}, outside the bundle",
                "save the model as one file (onnx.save_model(model, path, save_as_external_data=False)) and rebuild "
                "the bundle",
            )

    def sparse(self, start: int, end: int, depth: int, kind: str, where: str) -> None:
        depth = self.deeper(depth)
        for number, spans in self.spans(start, end, frozenset({_SPARSE_VALUES, _SPARSE_INDICES})).items():
            part = "values" if number == _SPARSE_VALUES else "indices"
            for a, b in spans:
                self.tensor(a, b, depth, f"{kind} {part}", where)

    def function(self, start: int, end: int, depth: int) -> None:
        depth = self.deeper(depth)
        found = self.spans(start, end, _FUNCTION_FIELDS)
        domain, name = self.last(found, _FUNCTION_DOMAIN), self.last(found, _FUNCTION_NAME)
        self.functions.add((domain, name))
        where = f"in function '{_text(domain)}:{_text(name)}'" if domain else f"in function '{_text(name)}'"
        for a, b in found.get(_FUNCTION_NODE, []):
            self.node(a, b, depth, where)
        for a, b in found.get(_FUNCTION_ATTRIBUTE, []):
            self.attribute(a, b, depth, node=None, where=where, embed_mode=None)


# -- TFLite: FlatBuffers -------------------------------------------------------------------------------------------

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
            raise _malformed("TFLite", f"no '{_TFLITE_IDENTIFIER.decode()}' identifier")
        model = self.root()
        if self.vector_length(model, _MODEL_EXTERNAL_GROUPS) or self.vector_length(model, _MODEL_EXTERNAL_BUFFERS):
            raise _Refusal(
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
        code = _text(raw)
        if raw not in _LITERT_CUSTOM_CODES:  # the exact bytes: LiteRT stops a name at its first NUL
            flex = " (a TensorFlow op through the Flex delegate)" if raw.startswith(b"Flex") else ""
            raise _Refusal(
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
            raise _malformed("TFLite", f"operator {index} has op code {opcode} of {len(codes)}")
        code = codes[opcode]
        if code in _OPTIONS_READ_AT_LOAD and large <= 1 and self.field(table, _OP_CUSTOM_OPTIONS) is None:
            raise _Refusal(
                "custom-op",
                f"has custom operator {index} ('{code}') without its options, which LiteRT reads unchecked at load",
                "convert the model again; its converter writes them",
            )

    def inside(self, offset: int, size: int, what: str) -> None:
        if offset + size > self.size:
            raise _Refusal(
                "outside-file",
                f"points {what} at bytes {offset}..{offset + size}, past the end of its {self.size}-byte file",
                "rebuild the bundle from an intact model",
            )

    # the format -------------------------------------------------------------------------------------------------

    def read(self, fmt: struct.Struct, pos: int) -> int:
        if pos < 0 or pos + fmt.size > self.size:
            raise _malformed("TFLite", f"an offset points past the end of the file ({pos})")
        value: int = fmt.unpack_from(self.buf, pos)[0]
        return value

    def root(self) -> int:
        return self.table(self.read(_U32, 0))

    def table(self, pos: int) -> int:
        """``pos`` if a table starts there whose vtable is in the file."""
        self.left -= 1
        if self.left < 0:
            raise _Refusal(
                "too-large",
                f"has more than {self.limits.max_fields} tables, more than this check reads",
                "split or simplify the model",
            )
        vtable = pos - self.read(_I32, pos)
        length = self.read(_U16, vtable)
        if length < 4 or length % 2 or vtable + length > self.size:  # noqa: PLR2004
            raise _malformed("TFLite", f"a table at byte {pos} has a broken vtable")
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
            raise _malformed("TFLite", f"a vector at byte {start} runs past the end of the file")
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


_READERS: dict[str, type[_Onnx | _Tflite]] = {"onnxruntime": _Onnx, "litert": _Tflite}
