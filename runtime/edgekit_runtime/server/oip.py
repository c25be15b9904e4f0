"""Open Inference Protocol v2 (KServe's "predict API v2", as Triton serves it), over HTTP/REST.

``GET /v2`` (server metadata), ``GET /v2/health/live``, ``GET /v2/health/ready``,
``GET /v2/models/NAME[/versions/VERSION]`` (model metadata), ``GET .../ready`` and
``POST .../infer``. Health answers are a bare status (200, or 404 for a model this server does not
serve), as the protocol says. Inference takes JSON ``data`` or binary tensors (:mod:`oip_tensors`) and
answers in kind; errors are ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from edgekit_runtime import __version__
from edgekit_runtime.errors import HttpError
from edgekit_runtime.server.asgi import OCTET_STREAM, Response, ascii_int, json_response
from edgekit_runtime.server.oip_tensors import datatype, decode_inputs, encode_output, requested_outputs

if TYPE_CHECKING:
    from edgekit_runtime.model import Model
    from edgekit_runtime.server.asgi import Request
    from edgekit_runtime.server.inference import Infer
    from edgekit_runtime.server.oip_tensors import InputTensor
    from edgekit_runtime.specs import TensorSpec

EXTENSIONS = ["binary_tensor_data"]
#: KServe's platform names: "<framework>_<format>"
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "litert": "litert_tflite"}
HEADER_LENGTH = b"inference-header-content-length"


def error_response(status: int, message: str) -> Response:
    """The protocol's error object."""
    return Response(status, orjson.dumps({"error": message}))


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    # -1 for a dynamic dimension; a tensor of unknown rank (rare: ONNX Runtime knows the rank) reports [-1]
    shape = [-1] if spec.shape is None else [d if isinstance(d, int) else -1 for d in spec.shape]
    doc: dict[str, Any] = {"name": spec.name, "datatype": datatype(spec.dtype), "shape": shape}
    if spec.layout is not None:  # a converted .tflite model: clients lay images out as it says (NHWC, NCHW)
        doc["parameters"] = {"layout": spec.layout}
    return doc


class OpenInference:
    """The v2 endpoints for one model."""

    def __init__(self, model: Model, infer: Infer) -> None:
        """Precompute the metadata answers."""
        self.model = model
        self.infer = infer
        self._server = orjson.dumps({"name": "edgekit-runtime", "version": __version__, "extensions": EXTENSIONS})
        self._metadata = orjson.dumps(
            {
                "name": model.name,
                "versions": [model.version],
                "platform": PLATFORMS.get(model.backend.name, model.backend.name),
                "inputs": [_tensor_metadata(s) for s in model.inputs],
                "outputs": [_tensor_metadata(s) for s in model.outputs],
                # what the engine runs on: onnxruntime's execution providers, LiteRT's delegate
                "parameters": {"devices": list(model.backend.devices)},
            }
        )
        self._datatypes = {s.name: datatype(s.dtype) for s in model.inputs}
        self._output_names = [s.name for s in model.outputs]

    async def server_metadata(self, request: Request) -> Response:  # noqa: ARG002
        """``GET /v2``."""
        return Response(200, self._server)

    async def live(self, request: Request) -> Response:  # noqa: ARG002
        """``GET /v2/health/live``: the process answers."""
        return Response(200, content_type=None)

    async def ready(self, request: Request) -> Response:  # noqa: ARG002
        """``GET /v2/health/ready``: the model was verified, loaded and self-tested before the server started."""
        return Response(200, content_type=None)

    async def model_metadata(self, request: Request) -> Response:
        """``GET /v2/models/NAME[/versions/VERSION]``."""
        self._check_model(request.params)
        return Response(200, self._metadata)

    async def model_ready(self, request: Request) -> Response:
        """``GET /v2/models/NAME[/versions/VERSION]/ready``."""
        self._check_model(request.params)
        return Response(200, content_type=None)

    async def model_infer(self, request: Request) -> Response:
        """``POST /v2/models/NAME[/versions/VERSION]/infer``."""
        self._check_model(request.params)
        header, binary, has_length = _split_body(request)
        if not isinstance(header, dict):
            raise HttpError(400, "inference request must be a JSON object with 'inputs'")
        request_id = header.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise HttpError(400, f"request 'id' must be a string, got {request_id!r:.40}")
        tensors = decode_inputs(header, binary, has_header_length=has_length)
        wanted = requested_outputs(header, self._output_names)
        self._check_datatypes(tensors)
        feeds = self.model.check({t.name: t.array for t in tensors})
        del header, binary, tensors  # the body and its JSON can go while the model runs
        request.settle(feeds)
        outputs = await self.infer(feeds)
        docs: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        for want in wanted:
            doc, raw = encode_output(want.name, outputs[want.name], binary=want.binary)
            docs.append(doc)
            if want.binary:
                chunks.append(raw)
        answer: dict[str, Any] = {"model_name": self.model.name, "model_version": self.model.version}
        if request_id is not None:
            answer["id"] = request_id
        answer["outputs"] = docs
        if not any(w.binary for w in wanted):
            return json_response(answer)
        head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(200, b"".join([head, *chunks]), OCTET_STREAM, [(HEADER_LENGTH, str(len(head)).encode())])

    def _check_datatypes(self, tensors: list[InputTensor]) -> None:
        for tensor in tensors:
            expected = self._datatypes.get(tensor.name)
            if expected is not None and tensor.datatype != expected:
                raise HttpError(
                    400, f"input '{tensor.name}' expects datatype {expected}, got {tensor.datatype}: convert it"
                )

    def _check_model(self, params: tuple[str, ...]) -> None:
        name, version = params
        if name != self.model.name:
            raise HttpError(404, f"model '{name}' is not served here: this server serves '{self.model.name}'")
        if version and version != self.model.version:
            raise HttpError(
                404, f"model '{name}' has no version '{version}' here: this server serves '{self.model.version}'"
            )


def _split_body(request: Request) -> tuple[Any, bytes | memoryview, bool]:
    """The JSON header and the binary data after it, by ``Inference-Header-Content-Length``."""
    body = request.body
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return request.json(), b"", False
    length = ascii_int(raw)
    if length is None or length > len(body):
        raise HttpError(
            400,
            f"Inference-Header-Content-Length is {raw.decode('latin-1').strip()[:40]!r} but must be the JSON "
            f"header's length in bytes, 0 to {len(body)} (the body's length)",
        )
    what = f"JSON header (the body's first {length} bytes, by Inference-Header-Content-Length)"
    return request.parse(body[:length], what), memoryview(body)[length:], True  # the arrays are views of the body
