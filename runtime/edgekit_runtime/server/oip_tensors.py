"""Open Inference Protocol tensors: JSON ``data`` and the binary tensor data extension, both ways.

Binary tensor data (Triton's ``binary_tensor_data`` extension) follows the JSON header in the body, in the
order of the tensors that carry ``parameters.binary_data_size``: little-endian, row-major, no padding; a
BOOL is one byte; each BYTES element is a 4-byte little-endian length and then its bytes. The request's
``Inference-Header-Content-Length`` header gives the JSON header's length; without it the whole body is JSON.
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit_runtime.errors import HttpError
from edgekit_runtime.server.json_arrays import json_array

if TYPE_CHECKING:
    from collections.abc import Sequence

#: the runtime's dtype names → OIP datatypes
DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}
NUMPY = {v: k for k, v in DATATYPES.items()}
_LENGTH = struct.Struct("<I")
#: NumPy's most dimensions (NPY_MAXDIMS: 32 before NumPy 2, 64 since), and most elements with 8-byte items
MAX_DIMS = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32
MAX_ELEMENTS = sys.maxsize // 8


def datatype(dtype: np.dtype[Any] | str) -> str:
    """The OIP datatype of a NumPy dtype or a runtime dtype name (text and objects are BYTES)."""
    if isinstance(dtype, str):
        return DATATYPES.get(dtype, dtype.upper())
    return "BYTES" if dtype.kind in "USO" else DATATYPES.get(dtype.name, dtype.name.upper())


@dataclass(frozen=True)
class InputTensor:
    """One decoded request input: its declared datatype and its array."""

    name: str
    datatype: str
    array: np.ndarray


def decode_inputs(header: dict[str, Any], binary: bytes | memoryview, *, has_header_length: bool) -> list[InputTensor]:
    """Every ``inputs`` entry of an inference request as an array of its declared shape and datatype."""
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise HttpError(400, "request needs 'inputs', a non-empty list of {name, shape, datatype, data} objects")
    decoded: list[InputTensor] = []
    offset = 0
    for index, doc in enumerate(inputs):
        tensor, offset = _decode_input(index, doc, binary, offset, has_header_length=has_header_length)
        decoded.append(tensor)
    if offset != len(binary):
        raise HttpError(
            400,
            f"the body carries {len(binary)} bytes after the JSON header but the inputs' binary_data_size "
            f"values add up to {offset}: check Inference-Header-Content-Length and binary_data_size",
        )
    names = [t.name for t in decoded]
    if len(set(names)) != len(names):
        raise HttpError(400, f"inputs name a tensor twice ({', '.join(names)}): send each input once")
    return decoded


def _decode_input(
    index: int,
    doc: Any,  # noqa: ANN401
    binary: bytes | memoryview,
    offset: int,
    *,
    has_header_length: bool,
) -> tuple[InputTensor, int]:
    name, shape, kind, size = _describe(index, doc)
    count = math.prod(shape)
    if size is None:
        return InputTensor(name, kind, _from_json(name, doc["data"], kind, shape, count)), offset
    if offset + size > len(binary):
        hint = "" if has_header_length else " (the Inference-Header-Content-Length header is missing)"
        raise HttpError(
            400,
            f"input '{name}' declares binary_data_size {size} but only {len(binary) - offset} bytes of "
            f"binary data are left in the body{hint}",
        )
    data = binary[offset : offset + size]
    array = _bytes_elements(name, data, count) if kind == "BYTES" else _from_binary(name, data, kind, shape, count)
    return InputTensor(name, kind, array.reshape(shape)), offset + size


def _describe(index: int, doc: Any) -> tuple[str, list[int], str, int | None]:  # noqa: ANN401
    """Name, shape, datatype and binary data size of a ``$request_input``, each checked."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise HttpError(400, f"inputs[{index}] must be an object with a 'name' string, 'shape', 'datatype', 'data'")
    name: str = doc["name"]
    shape = _checked_shape(name, doc.get("shape"))
    kind = doc.get("datatype")
    if not isinstance(kind, str) or kind not in NUMPY:
        raise HttpError(400, f"input '{name}' has datatype {kind!r:.40}: use one of {', '.join(NUMPY)}")
    parameters = doc.get("parameters", {})
    if not isinstance(parameters, dict):
        raise HttpError(400, f"input '{name}' has 'parameters' that are not an object")
    if "shared_memory_region" in parameters:
        raise HttpError(400, f"input '{name}' asks for shared memory, which this server does not offer: send data")
    size = parameters.get("binary_data_size")
    if size is None and "data" not in doc:
        raise HttpError(400, f"input '{name}' has no 'data' and no parameters.binary_data_size: send one")
    if size is not None and "data" in doc:
        raise HttpError(400, f"input '{name}' has both 'data' and parameters.binary_data_size: send one")
    if size is not None and (type(size) is not int or size < 0):
        raise HttpError(400, f"input '{name}' has binary_data_size {size!r:.40}: it must be a byte count")
    return name, shape, kind, size


def _checked_shape(name: str, shape: Any) -> list[int]:  # noqa: ANN401  (a JSON value)
    """``shape``, if NumPy can make it: non-negative integers, at most 64 of them, not too many elements."""
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise HttpError(400, f"input '{name}' needs 'shape', a list of non-negative integers, got {shape!r:.80}")
    if len(shape) > MAX_DIMS:
        raise HttpError(400, f"input '{name}' has {len(shape)} dimensions, over the {MAX_DIMS} an array may have")
    if math.prod(d for d in shape if d) > MAX_ELEMENTS:  # a zero dimension empties it, but NumPy still refuses
        raise HttpError(400, f"input '{name}' has shape {shape!r:.80}, more elements than any array may hold")
    return shape


def _from_json(name: str, data: Any, kind: str, shape: list[int], count: int) -> np.ndarray:  # noqa: ANN401
    if not isinstance(data, list):
        raise HttpError(400, f"input '{name}' has 'data' that is not a JSON array: send its values, row-major")
    array = json_array(data, name, kind)
    if array.size != count:
        raise HttpError(
            400, f"input '{name}' has {array.size} values in 'data' but shape {shape} needs {count}: make them agree"
        )
    return array.reshape(shape)


def _from_binary(name: str, data: bytes | memoryview, kind: str, shape: list[int], count: int) -> np.ndarray:
    dtype = np.dtype(NUMPY[kind])
    if len(data) != count * dtype.itemsize:
        raise HttpError(
            400,
            f"input '{name}' has binary_data_size {len(data)} but shape {shape} of {kind} needs "
            f"{count * dtype.itemsize} bytes ({count} values of {dtype.itemsize} bytes): make them agree",
        )
    if kind == "BOOL":
        return np.asarray(np.frombuffer(data, dtype=np.uint8) != 0)
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)


def _bytes_elements(name: str, data: bytes | memoryview, count: int) -> np.ndarray:
    values: list[str] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise HttpError(400, f"input '{name}' ends inside the 4-byte length of BYTES element {len(values)}")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > len(data):
            raise HttpError(
                400,
                f"input '{name}' BYTES element {len(values)} says {length} bytes but {len(data) - offset} are left",
            )
        try:
            values.append(str(data[offset : offset + length], "utf-8"))
        except UnicodeDecodeError as exc:
            raise HttpError(400, f"input '{name}' BYTES element {len(values)} is not UTF-8 text ({exc})") from exc
        offset += length
    if len(values) != count:
        raise HttpError(400, f"input '{name}' holds {len(values)} BYTES elements but its shape needs {count}")
    array = np.empty(count, dtype=object)
    array[:] = values
    return array


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for, and whether it wants it as binary data."""

    name: str
    binary: bool


def requested_outputs(header: dict[str, Any], available: Sequence[str]) -> list[RequestedOutput]:
    """The outputs to send, in the order asked (every output when the request names none)."""
    parameters = header.get("parameters", {})
    if not isinstance(parameters, dict):
        raise HttpError(400, "request 'parameters' must be an object")
    default = parameters.get("binary_data_output", False)
    if type(default) is not bool:
        raise HttpError(400, f"parameters.binary_data_output must be true or false, got {default!r:.40}")
    asked = header.get("outputs")
    if asked is None:
        return [RequestedOutput(name, default) for name in available]
    if not isinstance(asked, list):
        raise HttpError(400, "request 'outputs' must be a list of {name, parameters} objects")
    wanted = [_requested(index, doc, available, default) for index, doc in enumerate(asked)]
    names = [w.name for w in wanted]
    if len(set(names)) != len(names):
        raise HttpError(400, f"outputs name a tensor twice ({', '.join(names)}): ask for each once")
    return wanted


def _requested(index: int, doc: Any, available: Sequence[str], default: bool) -> RequestedOutput:  # noqa: ANN401
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise HttpError(400, f"outputs[{index}] must be an object with a 'name' string")
    name: str = doc["name"]
    if name not in available:
        raise HttpError(400, f"output '{name}' is unknown: the model gives {', '.join(map(repr, available))}")
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise HttpError(400, f"output '{name}' has 'parameters' that are not an object")
    if params.get("classification") or "shared_memory_region" in params:
        raise HttpError(400, f"output '{name}' asks for classification or shared memory, which this server lacks")
    binary = params.get("binary_data", default)
    if type(binary) is not bool:
        raise HttpError(400, f"output '{name}' has binary_data {binary!r:.40}: it must be true or false")
    return RequestedOutput(name, binary)


def encode_output(name: str, array: np.ndarray, *, binary: bool) -> tuple[dict[str, Any], bytes]:
    """One ``$response_output`` object, and its binary data (empty when it travels as JSON ``data``)."""
    kind = datatype(array.dtype)
    doc: dict[str, Any] = {"name": name, "datatype": kind, "shape": list(array.shape)}
    if not binary:
        flat = array.ravel()
        doc["data"] = flat.tolist() if kind == "BYTES" else flat
        return doc, b""
    if kind == "BYTES":
        encoded = [str(v).encode() for v in array.ravel()]
        raw = b"".join(_LENGTH.pack(len(e)) + e for e in encoded)
    else:
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    doc["parameters"] = {"binary_data_size": len(raw)}
    return doc, raw
