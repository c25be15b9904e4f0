"""INT8 static quantization in QDQ form, with activation ranges calibrated on data.

The most accurate and usually the fastest INT8 form for CNNs on CPUs. It needs
representative inputs: with none, the context carries synthetic ones and the report says
loudly that the result is a guess.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from edgekit.errors import ConfigError, PassError
from edgekit.graph_stats import default_opset
from edgekit.passes.base import PassConfig, PassContext, PassOutput
from edgekit.passes.graph_edit import drop_unused_opsets
from edgekit.passes.quantize_common import (
    check_op_types,
    quantizable_nodes,
    quantizer_failed,
    quiet_quantizer,
    resolve_reduce_range,
    working_copy,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import onnx

CalibrationMethodName = Literal["minmax", "entropy", "percentile"]
CALIBRATION_METHODS: tuple[CalibrationMethodName, ...] = ("minmax", "entropy", "percentile")
ActivationType = Literal["uint8", "int8"]
SUPPORTED_OPS = (
    "Add", "ArgMax", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "ConvTranspose", "CumSum",
    "EmbedLayerNormalization", "Flatten", "Gather", "GatherElements", "Gemm", "GlobalAveragePool",
    "InstanceNormalization", "LayerNormalization", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Pad", "Relu",
    "Reshape", "Resize", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "TopK", "Transpose", "Unsqueeze",
    "Where",
)  # fmt: skip
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Gather")


@dataclass(frozen=True)
class QuantizeStaticConfig(PassConfig):
    """Options of :class:`QuantizeStatic`."""

    #: how activation ranges are chosen from the calibration data
    method: CalibrationMethodName = "minmax"
    #: one weight scale per output channel (better accuracy for Conv, same speed)
    per_channel: bool = True
    #: 7-bit weights; ``None`` chooses from the target CPU (see :mod:`edgekit_runtime.cpu`)
    reduce_range: bool | None = None
    #: activation type; uint8 takes the fast U8S8 kernels on x86
    activation_type: ActivationType = "uint8"
    #: op types to quantize; ``None`` lets ONNX Runtime quantize every op it supports
    op_types: tuple[str, ...] | None = None
    #: node names to keep in float
    nodes_to_exclude: tuple[str, ...] = ()
    #: percentile kept by ``method="percentile"``
    percentile: float = 99.999
    #: run onnxruntime's quant_pre_process (symbolic shape inference + basic fusions) first
    preprocess: bool = True


class QuantizeStatic:
    """Insert QuantizeLinear/DequantizeLinear pairs with calibrated scales."""

    name: ClassVar[str] = "int8-static"
    Config = QuantizeStaticConfig

    def __init__(self, config: QuantizeStaticConfig | None = None) -> None:
        """Check options now, so a bad one fails before any work."""
        self.config = config or QuantizeStaticConfig()
        if self.config.op_types is not None:
            check_op_types(self.config.op_types, SUPPORTED_OPS, self.name)
        if not 50.0 < self.config.percentile <= 100.0:  # noqa: PLR2004
            raise ConfigError(f"percentile {self.config.percentile} is out of range: use a value in (50, 100]")

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:
        """Calibrate on ``ctx.calibration`` and return the QDQ model."""
        import onnx

        work = working_copy(model, self.name, self.config.nodes_to_exclude)
        if not ctx.calibration:
            raise PassError("no calibration data in the context: pass --calib FILE.npz", pass_name=self.name)
        upgraded_from = default_opset(work) if self.config.per_channel else _PER_CHANNEL_OPSET
        if upgraded_from < _PER_CHANNEL_OPSET:
            work = to_qdq_opset(work, upgraded_from)
        targets = quantizable_nodes(work, self.config.op_types or WEIGHTED_OPS)
        reduce_range = resolve_reduce_range(self.config.reduce_range, ctx.cpu)
        warnings: list[str] = []
        if self.config.method == "entropy":
            warnings.append(
                "onnxruntime's quantize_static fixes entropy calibration's histogram at 128 bins, the same as the "
                "quantized range, so its ranges equal minmax; percentile clips outliers"
            )
        if ctx.calibration_synthetic:
            warnings.append("calibrated on synthetic inputs: activation ranges are a guess; pass --calib")
        with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp, quiet_quantizer():
            src = Path(tmp) / "float.onnx"
            onnx.save(work, str(src))
            if self.config.preprocess:
                src = _preprocess(src, Path(tmp) / "pre.onnx", warnings)
            out_path = Path(tmp) / "qdq.onnx"
            warnings += self._quantize(src, out_path, ctx, reduce_range, Path(tmp))
            out = onnx.load(str(out_path))
        drop_unused_opsets(out)
        try:
            onnx.checker.check_model(out)
        except onnx.checker.ValidationError as exc:
            first = str(exc).strip().splitlines()[0]
            msg = f"onnxruntime.quantization wrote an invalid model ({first}): try --per-tensor or --exclude the node"
            raise PassError(msg, pass_name=self.name) from exc
        details: dict[str, Any] = {
            "method": self.config.method,
            "per_channel": self.config.per_channel,
            "reduce_range": reduce_range,
            "activation_type": self.config.activation_type,
            "weighted_nodes": len(targets),
            "calibration_batches": len(ctx.calibration),
            "calibration_synthetic": ctx.calibration_synthetic,
            "opset_upgraded_from": upgraded_from if upgraded_from < _PER_CHANNEL_OPSET else None,
        }
        return PassOutput(out, details, warnings)

    def _quantize(self, src: Path, dst: Path, ctx: PassContext, reduce_range: bool, tmp: Path) -> list[str]:
        """Run quantize_static; returns warnings about workarounds it needed."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[self.config.method]
        extra: dict[str, Any] = {"CalibTensorRangeSymmetric": False}
        if self.config.method == "percentile":
            extra["CalibPercentile"] = self.config.percentile
        kwargs: dict[str, Any] = {
            "quant_format": QuantFormat.QDQ,
            "op_types_to_quantize": list(self.config.op_types) if self.config.op_types else None,
            "per_channel": self.config.per_channel,
            "reduce_range": reduce_range,
            "activation_type": QuantType.QUInt8 if self.config.activation_type == "uint8" else QuantType.QInt8,
            "weight_type": QuantType.QInt8,
            "nodes_to_exclude": list(self.config.nodes_to_exclude),
            "calibrate_method": method,
            "extra_options": extra,
        }
        batches = ctx.calibration or []
        shown = ctx.progress.track(batches, f"calibrating ({self.config.method})")
        try:
            try:
                quantize_static(str(src), str(dst), calibration_reader(shown), **kwargs)
            except Exception as exc:
                if not _raised_in(exc, "_adjust_weight_scale_for_int32_bias"):
                    raise
                # onnxruntime's bias-scale adjustment fails on 2-D biases (skl2onnx writes them): skip it
                extra["QDQDisableWeightAdjustForInt32Bias"] = True
                quantize_static(str(src), str(dst), calibration_reader(iter(batches)), **kwargs)
                return ["weight-scale adjustment for int32 biases skipped (onnxruntime fails on 2-D biases)"]
        except Exception as exc:  # onnxruntime.quantization raises bare Exceptions
            raise quantizer_failed(exc, self.name, "exclude the failing node with --exclude, or use fp16") from exc
        finally:
            for leftover in tmp.glob("augmented_model*.onnx"):
                leftover.unlink()
        return []


#: per-channel QDQ writes DequantizeLinear with an ``axis`` attribute, which opset 13 introduced
_PER_CHANNEL_OPSET = 13


def to_qdq_opset(model: onnx.ModelProto, old: int) -> onnx.ModelProto:
    """Convert from opset ``old`` (< 13) to 13: onnxruntime's quantizer does not, and writes an invalid graph."""
    import onnx
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, _PER_CHANNEL_OPSET)
        onnx.checker.check_model(converted)
    except Exception as exc:  # the converter raises bare RuntimeErrors
        msg = f"per-channel INT8 needs opset 13 and converting from opset {old} failed ({exc}): use --per-tensor"
        raise PassError(msg, pass_name=QuantizeStatic.name) from exc
    return converted


def prepare_for_quantization(
    model: onnx.ModelProto, workdir: Path, *, per_channel: bool = True
) -> tuple[onnx.ModelProto, list[str]]:
    """What the pass does before quantizing: opset 13 for per-channel, then ``quant_pre_process``.

    The budgeted search runs this once and then the pass with ``preprocess=False`` on every trial,
    so node names (which exclusions use) are those of the model the quantizer sees.
    """
    import onnx

    opset = default_opset(model)
    if per_channel and opset < _PER_CHANNEL_OPSET:
        model = to_qdq_opset(model, opset)
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, quiet_quantizer():
        src = Path(tmp) / "float.onnx"
        onnx.save(model, str(src))
        done = _preprocess(src, Path(tmp) / "pre.onnx", warnings)
        return (onnx.load(str(done)) if done != src else model), warnings


def _raised_in(exc: BaseException, function: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function:
            return True
        tb = tb.tb_next
    return False


def _preprocess(src: Path, dst: Path, warnings: list[str]) -> Path:
    """Onnxruntime's recommended pre-processing; skipped with a warning when it cannot run."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # when symbolic shape inference is incomplete, onnxruntime saves a debug copy of the model into the
    # current folder: run it from the scratch folder so nothing lands in the user's
    with _working_directory(dst.parent):
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001  (symbolic shape inference fails on some graphs: not fatal)
            try:
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
            except Exception as exc:  # noqa: BLE001
                warnings.append(f"quant_pre_process skipped ({type(exc).__name__}): quantizing the graph as it is")
                return src
    return dst


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def calibration_reader(batches: Iterator[dict[str, np.ndarray]]) -> object:
    """An onnxruntime ``CalibrationDataReader`` that reads each batch once."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return _Reader()
