"""``edgekit compress MODEL``.

Exit codes: 0 done; 2 bad options or data; 3 a model that cannot be read (or, with ``--to tflite``,
converted); 4 a pass failed; 5 the budget was missed (the closest model and ``report.json`` are written
all the same, its bundle only with ``--bundle-anyway``). With ``--to onnx,tflite`` a model TFLite cannot
express still gets its ONNX results, report and bundle written, then the TFLite error is printed and the
exit status is that error's (3).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from edgekit.cli import choices
from edgekit.cli.option_values import bundle_options, shapes, state_pairs
from edgekit.cli.output import RichProgress, out, print_error, user_errors
from edgekit.errors import ConfigError

if TYPE_CHECKING:
    from edgekit.auto import Prefer
    from edgekit.compress import CompressOptions
    from edgekit.measure.latency import LatencyBudget
    from edgekit.report import Report
    from edgekit.tflite.config import IoLayout
    from edgekit_runtime.targets import Target

#: exit status when no variant meets the accuracy budget (the best one found is still written, but not bundled)
BUDGET_MISSED = 5


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def _timing(seconds: float) -> LatencyBudget:
    from edgekit.measure.latency import LatencyBudget

    if not seconds > 0:
        raise ConfigError(f"--timing {seconds:g} is not a duration: give seconds, more than 0")
    return LatencyBudget(seconds=seconds)


def _prefer(value: str) -> Prefer:
    from edgekit.auto import PREFERENCES

    for choice in PREFERENCES:
        if value == choice:
            return choice
    raise ConfigError(f"--prefer '{value}' is unknown: choose from {', '.join(PREFERENCES)}")


def _packed_as_is(model: Path, out_dir: Path, options: CompressOptions) -> bool:
    """A ``.tflite`` model is bundled as it is: edgekit does not compress TFLite (yet)."""
    from edgekit.importers import detect

    if detect(str(model)) != "tflite":
        return False
    if options.bundle is None:
        raise ConfigError("a .tflite model is packed as is, never compressed: drop --no-bundle to bundle it")
    from edgekit.bundle.source import PackData, pack_source

    data = PackData(calib=options.calib, eval=options.eval, input_shapes=options.input_shapes)
    built = pack_source(str(model), out_dir, options.bundle, data)
    out.print(f"wrote {built.path}: TFLite models are packed as is, without compression", soft_wrap=True)
    return True


def compress(
    model: Path = typer.Argument(
        ...,
        help="ONNX model, scikit-learn .pkl/.joblib/.skops, MLflow model folder, PyTorch module.py:factory or .pt2.",
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Folder for model.onnx, report.json and the bundle [default: MODEL's name + '-compressed', here].",
    ),
    mode: str | None = typer.Option(
        None,
        help="Variants to make, comma-separated; the first is the result: int8-static, int8-dynamic, fp16, "
        "int8-weight, int4-weight, prune [default: auto: try FP16 and INT8 variants, keep what meets --budget].",
    ),
    budget: str | None = typer.Option(
        None,
        help="Metric loss allowed: 1% (relative), 0.005 (absolute) or 0.5pt (points) [default: 1% in auto mode]. "
        "With --mode, the modes listed become the candidates.",
    ),
    metric: str | None = typer.Option(
        None,
        help="What the budget is about: accuracy, mae, rmse (need --eval labels), agreement, top1, cosine, relative, "
        "or module:function; OUTPUT=METRIC (top1, cosine, relative, exact; comma-separated) judges an output "
        "[default: accuracy with labels, else agreement with FP32, cosine for embeddings].",
    ),
    prefer: choices.Prefer = typer.Option(
        "latency",
        **choices.option(choices.Prefer, "--prefer"),
        help="Among variants meeting the budget: latency (the smallest of those not clearly slower than FP32 "
        "nor 25% behind the fastest) or size (the smallest).",
    ),
    max_trials: int = typer.Option(12, help="Fallback trials (re-quantizing with sensitive nodes in float)."),
    time_limit: float = typer.Option(900.0, help="Seconds after which no new fallback trial starts."),
    calib: Path | None = typer.Option(
        None,
        help="Calibration inputs: .npz with one array per model input, or a folder of images (needs edgekit[images]).",
    ),
    preprocess: str | None = typer.Option(
        None,
        help="For an image folder: 'scale=1/255;mean=0.5,0.5,0.5;"
        "std=0.5,0.5,0.5;size=HxW;layout=nchw|nhwc;color=rgb|bgr|gray'.",
    ),
    eval_data: Path | None = typer.Option(None, "--eval", help=".npz with inputs and 'label' for accuracy."),
    cleanup: choices.Cleanup = typer.Option(
        "onnxslim", **choices.option(choices.Cleanup, "--cleanup"), help="Graph clean-up: onnxslim, ort-basic or none."
    ),
    calibration_method: choices.CalibrationMethod = typer.Option(
        "minmax",
        **choices.option(choices.CalibrationMethod, "--calibration-method"),
        help="Static INT8 ranges: minmax, entropy or percentile.",
    ),
    per_channel: bool | None = typer.Option(
        None,
        "--per-channel/--per-tensor",
        help="Weight scales [default: per-channel static, per-tensor dynamic].",
    ),
    reduce_range: bool | None = typer.Option(
        None,
        "--reduce-range/--full-range",
        help="7-bit weights [default: the --target's choice, else chosen from this CPU's features].",
    ),
    op_types: str | None = typer.Option(None, help="Op types to quantize, comma-separated [default: per mode]."),
    exclude: str | None = typer.Option(None, help="Node names to keep in float32 (by INT8 and FP16), comma-separated."),
    sparsity: float = typer.Option(0.5, help="Fraction of weights zeroed by the prune mode."),
    threads: int | None = typer.Option(
        None, help="Inference threads for latency [default: the --target's, else cores, at most 4]."
    ),
    batch: int = typer.Option(32, help="The larger batch size latency is measured at."),
    timing: float = typer.Option(1.5, help="Seconds of timing per model and batch size (models take turns)."),
    input_shape: list[str] = typer.Option([], help="NAME=D1,D2,... for synthetic inputs where dims are free."),
    state: str | None = typer.Option(
        None,
        help="A stateful model's state, INPUT:OUTPUT pairs fed back along sequences (h:hn,c:cn), or none "
        "[default: found by name and shape].",
    ),
    max_eval_samples: int | None = typer.Option(None, help="Evaluate on at most this many samples."),
    to: str | None = typer.Option(
        None,
        "--to",
        help="What to make: onnx, tflite, or both (onnx,tflite); the first one's result is bundled. TFLite variants "
        "(fp32, fp16, int8) are timed in LiteRT, 1 thread, batch 1, and take NHWC images (needs edgekit[litert]) "
        "[default: onnx; with --target, the board's preferred format first].",
    ),
    target: choices.Board | None = typer.Option(
        None,
        **choices.option(choices.Board, "--target"),
        help="The board: rpi4, rpi5, rpi-zero2, jetson-orin or x86. Sets the latency threads, --reduce-range and "
        "the format tried first (docs/targets.md).",
    ),
    tflite_layout: choices.TfliteLayout = typer.Option(
        "channels-last",
        **choices.option(choices.TfliteLayout, "--tflite-layout"),
        help="TFLite image inputs and outputs: channels-last (NHWC) or onnx (as the model has them).",
    ),
    bundle: bool = typer.Option(True, "--bundle/--no-bundle", help="Also write NAME-VERSION.edgebundle."),
    bundle_anyway: bool = typer.Option(
        False, "--bundle-anyway", help="Bundle the result even when it misses --budget [default: no bundle then]."
    ),
    name: str | None = typer.Option(None, help="Bundle name [default: from the model's file name]."),
    model_version: str = typer.Option("1.0.0", help="Bundle version."),
    labels: Path | None = typer.Option(None, help="Class labels for the bundle: one per line, or a JSON list."),
    sign_key: Path | None = typer.Option(None, help="Ed25519 private key to sign the bundle with (edgekit keygen)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final line."),
) -> None:
    """Make a model smaller and faster for an edge device, and report what it gained and cost."""
    with user_errors():
        from edgekit import auto, passes
        from edgekit.cli.report_view import render, summary_line
        from edgekit.compress import CompressOptions, compress
        from edgekit.images import parse_preprocess

        profile, formats = _target(target.value if target else None, explicit_to=to is not None)
        modes = _split(mode)
        searching = budget is not None or mode is None
        auto_options = (
            auto.AutoOptions(
                budget=auto.parse_budget(budget) if budget is not None else auto.DEFAULT_BUDGET,
                metric=metric,
                prefer=_prefer(prefer.value),
                max_trials=max_trials,
                time_limit=time_limit,
            )
            if searching
            else None
        )
        if not searching and metric is not None:
            raise ConfigError("--metric scores variants against a budget: add --budget, or drop --mode for auto mode")
        ops = _split(op_types) or None
        excluded = _split(exclude)
        static = passes.QuantizeStaticConfig(
            method=calibration_method.value,
            per_channel=True if per_channel is None else per_channel,
            reduce_range=reduce_range,
            op_types=ops,
            nodes_to_exclude=excluded,
        )
        dynamic = passes.QuantizeDynamicConfig(
            op_types=ops or passes.quantize_dynamic.DEFAULT_OPS,
            per_channel=bool(per_channel),
            reduce_range=reduce_range,
            nodes_to_exclude=excluded,
        )
        options = CompressOptions(
            modes=modes,
            auto=auto_options,
            cleanup=passes.CleanupConfig(method=cleanup.value),
            static=static,
            dynamic=dynamic,
            fp16=passes.Fp16Config(nodes_to_exclude=excluded),
            prune=passes.PruneConfig(sparsity=sparsity),
            calib=calib,
            preprocess=parse_preprocess(preprocess) if preprocess else None,
            eval=eval_data,
            input_shapes=shapes(input_shape),
            state=state_pairs(state),
            threads=threads,
            batch=batch,
            max_eval_samples=max_eval_samples,
            latency_budget=_timing(timing),
            bundle=bundle_options(name, model_version, labels, sign_key) if bundle else None,
            bundle_anyway=bundle_anyway,
            targets=_split(to) or formats,
            tflite_layout=_tflite_layout(tflite_layout.value),
            target=profile,
        )
        out_dir = output or Path.cwd() / f"{model.stem}-compressed"
        if _packed_as_is(model, out_dir, options):
            return
        report = compress(model, out_dir, options, progress=RichProgress(enabled=not quiet))
    if not quiet:
        render(report, out)
        for note in (report.imported or {}).get("notes", []):
            out.print(f"imported: {note}", soft_wrap=True)
        for file in (f for f in report.files if f.endswith(".edgebundle")):
            out.print(f"bundle: {out_dir / file}", soft_wrap=True)
        if report.bundle is not None and report.bundle["withheld"]:
            out.print(
                f"no bundle written: {report.bundle['withheld']}; pass --bundle-anyway to bundle it all the same",
                soft_wrap=True,
            )
    out.print(summary_line(report, out_dir), soft_wrap=True)
    _tflite_failure(report, asked=to is not None)
    searches = [report.auto, report.tflite.auto if report.tflite is not None else None]
    if any(s is not None and s.verdict is not None and not s.verdict.met for s in searches):
        raise typer.Exit(BUDGET_MISSED)


def _tflite_failure(report: Report, *, asked: bool) -> None:
    """A TFLite conversion that failed: an error (exit 3) when ``--to`` asked for it, a note when a target did."""
    failed = report.tflite if report.tflite is not None and report.tflite.error is not None else None
    if failed is None:
        return
    if not asked:  # the target's preference: the ONNX result stands
        out.print(f"note: TFLite cannot take this model; the ONNX result is bundled ({failed.error})", soft_wrap=True)
        return
    print_error(str(failed.error))
    raise typer.Exit(failed.exit_code or 1)


def _target(name: str | None, *, explicit_to: bool) -> tuple[Target | None, tuple[str, ...]]:
    """The ``--target`` profile, and what ``--to`` defaults to: its format first, the other as the fallback."""
    if name is None:
        return None, ("onnx",)
    from edgekit_runtime import targets

    profile = targets.get(name)  # a ConfigError (exit 2) for a name it does not know
    if profile.format != "tflite":
        return profile, ("onnx",)
    if not explicit_to:
        from edgekit.measure.litert import require_litert

        try:
            require_litert(f"--target {name}")
        except ConfigError as exc:
            raise ConfigError(f"{exc}; or keep to ONNX with --to onnx") from None
    return profile, ("tflite", "onnx")


def _tflite_layout(value: str) -> IoLayout:
    from edgekit.tflite.config import IO_LAYOUTS

    for choice in IO_LAYOUTS:
        if value == choice:
            return choice
    raise ConfigError(f"--tflite-layout '{value}' is unknown: choose from {', '.join(IO_LAYOUTS)}")
