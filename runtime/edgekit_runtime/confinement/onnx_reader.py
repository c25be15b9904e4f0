"""The ONNX reader of :mod:`edgekit_runtime.confinement`: one bounded walk over a ``ModelProto``'s wire format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit_runtime.confinement.common import Limits, Refusal, malformed, printable

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
# ------------------------------------------------------------------------------------

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
    return f"node '{printable(node[0])}' ({printable(node[1])})"


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
            raise Refusal(
                "ort-format", "is an ORT-format model, which cannot be checked", "bundle the .onnx model instead"
            )
        self.model(0, len(self.buf))
        for (domain, op_type), (node, where) in self.custom.items():
            if (domain, op_type) not in self.functions:
                raise Refusal(
                    "custom-op",
                    f"uses op '{printable(op_type)}' from domain '{printable(domain)}' ({_label(node)} {where}), "
                    "which ONNX Runtime does not have built in (a custom-op library)",
                    "edgekit-runtime loads no op libraries: export the model with standard ONNX ops",
                )

    # the wire format ------------------------------------------------------------------------------------------

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        buf = self.buf
        if pos >= end:
            raise malformed("ONNX", f"a number runs past the end of its message at byte {pos}")
        byte = buf[pos]
        if byte < 0x80:  # noqa: PLR2004  (one-byte varint: most of them)
            return byte, pos + 1
        value, shift = byte & 0x7F, 7
        pos += 1
        while True:
            if pos >= end:
                raise malformed("ONNX", f"a number runs past the end of its message at byte {pos}")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:  # noqa: PLR2004
                return value & _UINT64, pos
            shift += 7
            if shift >= 70:  # noqa: PLR2004
                raise malformed("ONNX", f"a number is longer than 10 bytes at byte {pos}")

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """``(field number, wire type, a, b)``: a varint's value in ``a``, or a length-delimited field's ``[a, b)``.

        Fixed-width fields are skipped: nothing this check looks at has one.
        """
        buf, pos = self.buf, start
        while pos < end:
            self.left -= 1
            if self.left < 0:
                raise Refusal(
                    "too-large",
                    f"has more than {self.limits.max_fields} fields, more than this check reads",
                    "split or simplify the model",
                )
            tag = buf[pos]  # pos < end <= len(buf)
            tag, pos = (tag, pos + 1) if tag < 0x80 else self.varint(pos, end)  # noqa: PLR2004  (1-byte tags: most)
            number, wire = tag >> 3, tag & 7
            if not 0 < number <= _MAX_FIELD:
                raise malformed("ONNX", f"field number {number} at byte {pos}")
            if wire == _LEN:
                size, pos = self.varint(pos, end)
                if size > end - pos:
                    raise malformed("ONNX", f"field {number} at byte {pos} runs past the end of its message")
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
            raise malformed("ONNX", f"wire type {wire} at byte {pos}")
        pos += 8 if wire == _FIXED64 else 4
        if pos > end:
            raise malformed("ONNX", f"a fixed-width field runs past the end of its message at byte {end}")
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
            raise Refusal(
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
                    raise Refusal(
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
            raise Refusal(
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
            inside = f"in attribute '{printable(name)}' of {_label(node)}, {where}"
            for number in sorted(found.keys() & _ATTR_VALUES):
                for a, b in found[number]:
                    if number in _ATTR_TENSORS:
                        self.tensor(a, b, depth, "tensor", inside)
                    elif number in _ATTR_SPARSE:
                        self.sparse(a, b, depth, "sparse tensor", inside)
                    else:
                        self.graph(a, b, depth, f"in subgraph '{printable(name)}' of {_label(node)}")
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
            place = f"the external file '{printable(location)}'" if location else "an external file"
            raise Refusal(
                "external-data",
                f"keeps {kind} '{printable(name)}' ({where}) in {place}, outside the bundle",
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
        where = f"in function '{printable(domain)}:{printable(name)}'" if domain else f"in function '{printable(name)}'"
        for a, b in found.get(_FUNCTION_NODE, []):
            self.node(a, b, depth, where)
        for a, b in found.get(_FUNCTION_ATTRIBUTE, []):
            self.attribute(a, b, depth, node=None, where=where, embed_mode=None)


def check_onnx(data: bytes, limits: Limits) -> None:
    """Walk a ``ModelProto``'s bytes; :class:`Refusal` at the first thing that reaches outside them."""
    _Onnx(data, limits).check()
