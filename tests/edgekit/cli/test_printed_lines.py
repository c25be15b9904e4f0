"""What ``edgekit`` prints is what was written: refusals, paths, names and help keep their ``[...]``.

The consoles print no rich markup, and typer's help is plain text, so ``expects shape [batch, 1, 8, 8]``,
``pip install 'edgekit[torch]'``, ``[default: 1%]`` or a file called ``[/x].onnx`` come out as they are.

``REFUSALS`` is the table of the command line's refusals: the command line, its exit status and the one line it
prints on stderr. A new refusal is one more row. Each runs in a folder of prepared files (``workdir``), with
relative paths, so the expected line is the exact line; a row whose line holds text from a library (Python's
own error message) gives a regular expression instead.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgekit.cli import app
from tests.conftest import DIGITS

runner = CliRunner()
FAST = ["--max-eval-samples", "64", "--timing", "0.2"]
BROKER = ["--broker", "mqtt://localhost:1", "--fleet", "f"]  # every row below is refused before it connects
SIGNED = (
    "fleet commands are signed: give --sign-key KEY (or set EDGEKIT_SIGN_KEY), the .key of edgekit keygen "
    "whose .pub the devices trust"
)
TOPIC = "cannot be an MQTT topic level: use 1 to 64 characters from A-Z a-z 0-9 . _ -"
NO_BATCH = (
    "input 'input' expects shape [batch, 1, 8, 8] (float32), got [1, 8, 8] (float32) in a[1].npz: "
    "add the batch dimension (array[None] or np.stack)"
)
NOT_ONNX = "is not a readable ONNX model (the protobuf is truncated or corrupt: re-export or re-download it)"


def row(argv: str | list[str], code: int, line: str | re.Pattern[str]) -> object:
    """One refusal: ``argv`` (split on spaces when a string), its exit status and its stderr line after ``error: ``."""
    words = argv.split() if isinstance(argv, str) else argv
    return pytest.param(words, code, line, id=" ".join(words))


REFUSALS = [
    # the command line itself
    row("frobnicate", 2, "No such command 'frobnicate'. (see edgekit --help)"),
    row("--bogus", 2, "No such option: --bogus (see edgekit --help)"),
    row("inspect cnn.onnx --json --bogus", 2, "No such option: --bogus (see edgekit inspect --help)"),
    # edgekit inspect
    row("inspect", 2, "Missing argument 'model'. (see edgekit inspect --help)"),
    row("inspect [/x].onnx", 3, "model file '[/x].onnx' does not exist: check the path"),
    row("inspect a[1].onnx", 3, "model file 'a[1].onnx' does not exist: check the path"),
    row("inspect dir", 3, "'dir' is a folder without an MLmodel file: pass a model file, or an MLflow model folder"),
    row("inspect notes.onnx", 3, f"'notes.onnx' {NOT_ONNX}"),
    row("inspect trunc.onnx", 3, f"'trunc.onnx' {NOT_ONNX}"),
    row("inspect empty.onnx", 3, "model file 'empty.onnx' is empty: re-export the model"),
    row(
        "inspect a[1].pkl",
        3,
        re.compile(
            r"'a\[1\]\.pkl' cannot be unpickled \(UnpicklingError: .*\): "
            r"the file is truncated or corrupt, re-save the model"
        ),
    ),
    row(
        "inspect dict.pkl", 3, "'dict.pkl' holds a dict, not a scikit-learn estimator: save the fitted estimator itself"
    ),
    row(
        "inspect s3://b/m[1].onnx",
        3,
        "'s3://b/m[1].onnx' is a URL: edgekit reads local files only (loading a model can run its code); "
        "download it first, e.g. mlflow artifacts download -u URI -d DIR",
    ),
    row(
        "inspect w.pt",
        3,
        "'w.pt' is a PyTorch state or pickle file, which holds no architecture: pass module.py:factory "
        "(a function returning the nn.Module) or an ExportedProgram .pt2",
    ),
    row("inspect m[1].py:make", 3, "module file 'm[1].py' does not exist: check the path before ':factory'"),
    row(
        "inspect x.tflite",
        3,
        "'x.tflite' is a TFLite model, which edgekit packs as is: run edgekit bundle pack 'x.tflite', "
        "then edgekit bundle inspect on the bundle it writes",
    ),
    row(
        "inspect cnn.onnx --input-shape x=[1,2]",
        2,
        "--input-shape 'x=[1,2]' is not NAME=D1,D2,...: write it like input=1,3,224,224",
    ),
    # edgekit compress
    row("compress cnn.onnx -o out --calib a[1].npz", 2, NO_BATCH),
    row("compress cnn.onnx -o out --eval a[1].npz --mode fp16", 2, NO_BATCH),
    row(
        "compress cnn.onnx -o out --mode fp16 --exclude nope",
        2,
        "--exclude names no node called nope: node names look like node_conv2d, node_relu, node_conv2d_1, "
        "node_relu_1, node_max_pool2d",
    ),
    row("compress cnn.onnx -o out --calib [x]/c.npz", 2, "calibration file '[x]/c.npz' does not exist: check the path"),
    row(
        "compress cnn.onnx -o out --labels [x].txt",
        2,
        "--labels file '[x].txt' does not exist: give a text file with one label per line",
    ),
    row(
        "compress cnn.onnx -o out --target mars",
        2,
        "--target 'mars' is unknown: choose from rpi4, rpi5, rpi-zero2, jetson-orin, x86",
    ),
    row(
        "compress cnn.onnx -o out --budget [1%]",
        2,
        "--budget '[1%]' is not a budget: write 1% (relative), 0.005 (absolute) or 0.5pt (points)",
    ),
    row(
        "compress cnn.onnx -o out --mode [fp16]",
        2,
        "unknown mode '[fp16]': choose from int8-static, int8-dynamic, fp16, int8-weight, int4-weight, prune",
    ),
    row(
        "compress cnn.onnx -o out --max-trials abc",
        2,
        "Invalid value for '--max-trials': Input should be a valid integer, unable to parse string as an integer "
        "(see edgekit compress --help)",
    ),
    row(
        "compress cnn.onnx -o out --mode fp16 --sign-key [k].key",
        2,
        "signing key '[k].key' does not exist: make one with edgekit keygen",
    ),
    row(
        "compress cnn.onnx -o out --to tflite --mode prune",
        2,
        "--mode prune has no TFLite variant: with --to tflite use --mode fp16 or int8-static (tflite-fp32 is always "
        "made), or add onnx to --to",
    ),
    row(
        "compress x.tflite -o out --no-bundle",
        2,
        "a .tflite model is packed as is, never compressed: drop --no-bundle to bundle it",
    ),
    row("compress a[1].npz -o out", 3, f"'a[1].npz' {NOT_ONNX}"),
    row(
        "compress dict.pkl -o out",
        3,
        "'dict.pkl' holds a dict, not a scikit-learn estimator: save the fitted estimator itself",
    ),
    # edgekit bundle pack / inspect
    row("bundle pack [/x].onnx -o out", 3, "model file '[/x].onnx' does not exist: check the path"),
    row(
        "bundle pack dir -o out",
        3,
        "'dir' is a folder without an MLmodel file: pass a model file, or an MLflow model folder",
    ),
    row(
        "bundle pack cnn.onnx -o out --created yesterday",
        2,
        "--created 'yesterday' is not a date: write it like 2026-11-24T12:00:00Z",
    ),
    row(
        "bundle pack cnn.onnx -o out --labels [x].txt",
        2,
        "--labels file '[x].txt' does not exist: give a text file with one label per line",
    ),
    row(
        "bundle pack cnn.onnx -o out --labels empty.txt",
        2,
        "--labels file 'empty.txt' is empty: write one label per line, in output order",
    ),
    row(
        "bundle pack cnn.onnx -o out --labels bad.json",
        2,
        "--labels file 'bad.json' is not valid JSON: give a JSON list of strings",
    ),
    row(
        "bundle pack cnn.onnx -o out --labels obj.json",
        2,
        "--labels file 'obj.json' is not a JSON list: give a list of strings",
    ),
    row(
        "bundle pack cnn.onnx -o out --labels labels.txt",
        2,
        "2 labels given but the model's outputs have 10 classes: give one label per class, in output order",
    ),
    row(
        "bundle pack cnn.onnx -o out --input-shape x=[1,2]",
        2,
        "--input-shape 'x=[1,2]' is not NAME=D1,D2,...: write it like input=1,3,224,224",
    ),
    row(
        "bundle pack cnn.onnx -o out --preprocess gamma=2",
        2,
        "--preprocess item 'gamma=2' is unknown: use scale, mean, std, size=HxW, layout=nchw|nhwc, color=rgb|bgr|gray",
    ),
    row(
        "bundle pack cnn.onnx -o out --variant fp16",
        2,
        "--variant picks a model in a compress output folder, and 'cnn.onnx' is not one: drop it",
    ),
    row("bundle pack cnn.onnx -o out --calib a[1].npz", 2, NO_BATCH),
    row("bundle inspect [x].edgebundle", 1, "bundle '[x].edgebundle' does not exist: check the path"),
    row("bundle inspect notes.onnx", 1, "'notes.onnx' is not an edgekit bundle (not a ZIP archive): rebuild it"),
    row(
        "bundle inspect notes.onnx --trust [k].pub",
        2,
        "trusted key '[k].pub' does not exist: pass the .pub file edgekit keygen wrote",
    ),
    row(
        "bundle inspect notes.onnx --trust notes.onnx",
        2,
        "'notes.onnx' is not a PEM public key: pass the .pub file edgekit keygen wrote",
    ),
    # edgekit keygen / sign / verify / convert
    row("keygen -o k", 2, "'k.key' exists: choose another name with -o, or pass --force to replace it"),
    row("sign [x].edgebundle", 2, "Missing option '--key'. (see edgekit sign --help)"),
    row("sign [x].edgebundle --key [k].key", 2, "signing key '[k].key' does not exist: make one with edgekit keygen"),
    row("sign notes.onnx --key notes.onnx", 2, "'notes.onnx' is not a PEM private key: make one with edgekit keygen"),
    row("sign notes.onnx --key k.key", 1, "'notes.onnx' is not an edgekit bundle (not a ZIP archive): rebuild it"),
    row(
        "verify [x].edgebundle",
        2,
        "no --trust key given: pass the signer's .pub, or --allow-unsigned to check hashes only",
    ),
    row("verify [x].edgebundle --allow-unsigned", 1, "bundle '[x].edgebundle' does not exist: check the path"),
    row(
        "verify notes.onnx --trust k.key",
        2,
        "'k.key' is a private key: give the device the .pub file, and keep the .key on the host",
    ),
    row("convert cnn.onnx -o out[1].txt", 2, "-o 'out[1].txt' does not end in .onnx: name the ONNX file to write"),
    row("convert [x].pkl -o out.onnx", 3, "model file '[x].pkl' does not exist: check the path"),
    row("convert cnn.onnx", 2, "Missing option '-o' / '--output'. (see edgekit convert --help)"),
    row(
        "convert cnn.onnx -o o.onnx --opset abc",
        2,
        "Invalid value for '--opset': Input should be a valid integer, unable to parse string as an integer "
        "(see edgekit convert --help)",
    ),
    # edgekit bench-compare
    row("bench-compare [x].json", 2, "[x].json: cannot read it (No such file or directory)"),
    row(
        "bench-compare bad.json",
        2,
        re.compile(r"bad\.json is not JSON \(.*\): give the file edgekit-runtime bench wrote"),
    ),
    row(
        "bench-compare obj.json",
        2,
        "obj.json is not a bench result (edgekit.bench/1, found None): run edgekit-runtime bench",
    ),
    # edgekit telemetry
    row("telemetry collect", 2, "Missing option '--broker'. (see edgekit telemetry collect --help)"),
    row(
        "telemetry collect --broker ftp://host",
        2,
        "--broker 'ftp://host' is not a broker URL: use mqtt://HOST[:PORT], or mqtts:// for TLS",
    ),
    row(
        "telemetry collect --broker mqtt://localhost:1 --password-file [x].pw",
        2,
        "--password-file [x].pw cannot be read (No such file or directory): give a readable file",
    ),
    row(
        "telemetry collect --broker mqtt://localhost:1 --db mysql://h/[x]",
        2,
        "--db 'mysql://h/[x]' has an unknown scheme 'mysql': give a file path, sqlite:///PATH or postgresql://...",
    ),
    row("telemetry collect --broker mqtts://localhost:1 --ca [x].pem", 2, "--ca [x].pem: no such file"),
    row(
        "telemetry collect --broker mqtt://localhost:1 --fleet a/b",
        2,
        "--fleet 'a/b' is not a fleet name: use + or 1 to 64 of A-Z a-z 0-9 . _ -",
    ),
    row(
        "telemetry collect --broker mqtt://localhost:1 --share a/b",
        2,
        "--share 'a/b' is not a group name: use 1 to 64 of A-Z a-z 0-9 . _ -",
    ),
    row(
        "telemetry collect --broker mqtt://localhost:1 --session-expiry -1",
        2,
        "--session-expiry -1 is out of range: use 0 to 4294967295 seconds",
    ),
    row("telemetry show --db [x].db", 1, "no telemetry database at '[x].db': give the --db that collect wrote to"),
    row(
        "telemetry show --db notes.onnx",
        1,
        "'notes.onnx' is not a usable SQLite database: file is not a database: give another --db",
    ),
    # edgekit fleet
    row("fleet devices --db [x].db", 1, "no telemetry database at '[x].db': give the --db that collect wrote to"),
    row("fleet dashboard --db [x].db", 1, "no telemetry database at '[x].db': give the --db that collect wrote to"),
    row("fleet dashboard --db [x].db --port 99999", 2, "--port 99999 is not a TCP port: use 1 to 65535"),
    row(
        ["fleet", "deploy", "[x].edgebundle", *BROKER, "--canary", "150%"],
        2,
        "--canary '150%' is out of range: use more than 0% and at most 100%",
    ),
    row(
        ["fleet", "deploy", "[x].edgebundle", *BROKER, "--abort-if", "p99_ms>>[4]"],
        2,
        "--abort-if 'p99_ms>>[4]': 'p99_ms>>[4]' is not METRIC OP NUMBER: write e.g. error_rate>0.05 "
        "(conditions joined with 'or')",
    ),
    row(
        ["fleet", "deploy", "[x].edgebundle", *BROKER, "--abort-if", "p99_ms>40"],
        2,
        "--abort-if reads the canary's telemetry: give --db, the collector's database",
    ),
    row(
        ["fleet", "deploy", "[x].edgebundle", *BROKER, "--url", "http://x", "--serve", "h:5"],
        2,
        "--url and --serve each say where the bundle comes from: give one",
    ),
    row(
        ["fleet", "deploy", "[x].edgebundle", *BROKER, "--chunk-kib", "0"],
        2,
        "--chunk-kib 0: give 1 to 16384 (KiB; 256 suits most brokers)",
    ),
    row(
        ["fleet", "deploy", "[x].edgebundle", *BROKER, "--bake", "-1"],
        2,
        "--timeout must be more than 0 seconds and --bake 0 or more",
    ),
    row(["fleet", "deploy", "[x].edgebundle", *BROKER], 2, SIGNED),
    row(
        ["fleet", "deploy", "[x].edgebundle", *BROKER, "--sign-key", "k.pub"],
        2,
        "'k.pub' is a public key: sign with the .key file, and give devices the .pub",
    ),
    row(
        ["fleet", "deploy", "notes.onnx", *BROKER, "--sign-key", "k.key"],
        3,
        "'notes.onnx' is not an edgekit bundle (not a ZIP archive): rebuild it",
    ),
    row(["fleet", "rollback", *BROKER], 2, SIGNED),
    row(
        ["fleet", "rollback", "--broker", "mqtt://localhost:1", "--fleet", "a/b", "--sign-key", "k.key"],
        2,
        "--fleet 'a/b' is not a fleet name: use + or 1 to 64 of A-Z a-z 0-9 . _ -",
    ),
    row(
        ["fleet", "set-config", "[noequals]", *BROKER],
        2,
        "'[noequals]' is not KEY=VALUE: write e.g. deploy_watch=10 or log_level=info",
    ),
    row(["fleet", "set-config", "a=[1", *BROKER, "--timeout", "0"], 2, "--timeout must be more than 0 seconds"),
    row(
        ["fleet", "watch", "--broker", "ftp://host", "--fleet", "f"],
        2,
        "--broker 'ftp://host' is not a broker URL: use mqtt://HOST[:PORT], or mqtts:// for TLS",
    ),
    row(
        ["fleet", "watch", *BROKER, "--password-file", "[x].pw"],
        2,
        "--password-file [x].pw cannot be read (No such file or directory): give a readable file",
    ),
    row("fleet provision out --fleet a/b", 2, f"--fleet 'a/b' {TOPIC}"),
    # URLs that are no URL at all (a bracket that opens no IPv6 address), a login in them never shown
    row(
        ["telemetry", "collect", "--broker", "http://[x]"],
        2,
        "--broker 'http://[x]' is not a URL ('x' does not appear to be an IPv4 or IPv6 address): use mqtt://HOST[:PORT],"
        " or mqtts:// for TLS",
    ),
    row(
        ["telemetry", "collect", "--broker", "mqtt://u:secret@[x"],
        2,
        "--broker 'mqtt://[x' is not a URL (Invalid IPv6 URL): use mqtt://HOST[:PORT], or mqtts:// for TLS",
    ),
    row(
        ["telemetry", "show", "--db", "mysql://u:secret@[x]"],
        2,
        "--db 'mysql://[x]' has an unknown scheme 'mysql': give a file path, sqlite:///PATH or postgresql://...",
    ),
    row("fleet provision out --fleet f --device d[1]", 2, f"--device 'd[1]' {TOPIC}"),
    row("fleet provision out --fleet f --device d:[g]", 2, f"--group '[g]' {TOPIC}"),
    row("fleet provision out --fleet f --port 0", 2, "--port 0 is not a TCP port: use 1 to 65535"),
    row(
        "fleet provision out --fleet f --rotate nobody",
        2,
        "--rotate nobody has no account in out: give a provisioned device or role",
    ),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder of the files the refusals name: models, broken models, data, labels, a key pair."""
    from edgekit.bundle.signing import generate_keypair

    here = tmp_path_factory.mktemp("printed")
    shutil.copy(DIGITS / "cnn.onnx", here / "cnn.onnx")
    (here / "notes.onnx").write_text("this is not a model")
    (here / "empty.onnx").write_bytes(b"")
    (here / "trunc.onnx").write_bytes((DIGITS / "cnn.onnx").read_bytes()[:5000])
    (here / "a[1].pkl").write_bytes(b"x not a pickle")
    (here / "dict.pkl").write_bytes(pickle.dumps({"coef": [1, 2]}))
    (here / "x.tflite").write_bytes(b"TFL3 not really")
    (here / "dir").mkdir()
    np.savez(here / "a[1].npz", input=np.zeros((1, 8, 8), np.float32))
    (here / "bad.json").write_text("not json")
    (here / "obj.json").write_text('{"a": 1}')
    (here / "empty.txt").write_text("")
    (here / "labels.txt").write_text("[cat]\ndog\n")
    generate_keypair(here / "k")
    return here


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(("argv", "code", "line"), REFUSALS)
def test_each_refusal_is_its_one_line_as_written(workdir, monkeypatch, argv, code, line):
    monkeypatch.chdir(workdir)
    before = _listing(workdir)
    result = runner.invoke(app, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    (printed,) = result.stderr.splitlines()
    if isinstance(line, re.Pattern):
        assert printed.startswith("error: "), printed
        assert line.fullmatch(printed.removeprefix("error: ")), printed
    else:
        assert printed == f"error: {line}"
    assert _listing(workdir) == before, "a refused command wrote something"


def _edgekit() -> Path:
    script = Path(sys.executable).with_name("edgekit")
    assert script.is_file(), f"no edgekit script beside {sys.executable}: pip install -e . into this environment"
    return script


@pytest.mark.parametrize(
    ("argv", "code", "stderr"),
    [
        (["inspect", "[/x].onnx"], 3, "error: model file '[/x].onnx' does not exist: check the path\n"),
        (
            ["compress", "cnn.onnx", "-o", "out", "--calib", "a[1].npz"],
            2,
            f"error: {NO_BATCH}\n",
        ),
        (["sign", "x.edgebundle"], 2, "error: Missing option '--key'. (see edgekit sign --help)\n"),
    ],
)
def test_the_installed_script_prints_the_same_lines(workdir, argv, code, stderr):
    env = {**os.environ, "COLUMNS": "60"}  # a narrow terminal does not break the line either
    result = subprocess.run([_edgekit(), *argv], capture_output=True, text=True, cwd=workdir, env=env, check=False)
    assert (result.returncode, result.stderr, result.stdout) == (code, stderr, "")


def _commands(group: typer.core.TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found.extend(_commands(command, (*path, name)))
        else:
            found.append(((*path, name), command))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _squeezed(text: str) -> str:
    """``text`` without its whitespace: help wraps wherever the terminal ends."""
    return "".join(text.split())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_prints_every_help_text_as_written(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "╭" not in result.stdout  # plain help, not rich panels that read [..] as markup
    shown = _squeezed(result.stdout)
    for param in command.params:
        if getattr(param, "help", None):
            assert _squeezed(param.help) in shown, (param.name, param.help)
        default = param.default
        shows = getattr(param, "show_default", None) is not False and isinstance(default, (int, float, str))
        if shows and not isinstance(default, bool):  # a flag's default reads --bundle, not True
            assert _squeezed(f"[default: {default}") in shown, param.name


def test_compress_help_keeps_its_brackets():
    result = runner.invoke(app, ["compress", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    for literal in (
        "[default: 1% in auto mode]",
        "[default: auto: try FP16 and INT8 variants, keep what meets --budget]",
        "(needs edgekit[litert])",
        "(needs edgekit[images])",
        "[default: latency]",
        "[default: 1.0.0]",
        "--prefer [latency|size]",
    ):
        assert literal in text, literal


def _ok(argv: list[str]) -> str:
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_inspect_prints_a_bracketed_path_and_shapes_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DIGITS / "cnn.onnx", tmp_path / "net[1].onnx")
    printed = _ok(["inspect", "net[1].onnx"])
    assert printed.startswith("net[1].onnx  233.1 KiB  IR v10")
    assert "│ in  │ input  │ float32 │ [batch, 1, 8, 8] │" in printed


def test_inspect_reads_a_scikit_learn_pickle_itself(tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    monkeypatch.chdir(tmp_path)
    features = np.random.default_rng(0).random((20, 4))
    model = LogisticRegression().fit(features, np.arange(20) % 2)
    (tmp_path / "model[v2].pkl").write_bytes(pickle.dumps(model))
    printed = _ok(["inspect", "model[v2].pkl"])
    assert printed.startswith("model[v2].pkl (sklearn, converted to ONNX by edgekit)  ")
    assert "│ in  │ input         │ float32 │ [?, 4] │" in printed
    assert "note: classifier outputs: 'label' and 'probabilities' (no ZipMap)" in printed
    assert '"kind": "sklearn"' in _ok(["inspect", "model[v2].pkl", "--json"])


def test_pack_and_bundle_inspect_print_names_and_labels_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DIGITS / "cnn.onnx", tmp_path / "net[1].onnx")
    (tmp_path / "labels.txt").write_text("[zero]\n" + "\n".join(f"d{i}" for i in range(1, 10)))
    packed = _ok(["bundle", "pack", "net[1].onnx", "-o", "[out]", "--name", "digits", "--labels", "labels.txt"])
    assert packed.startswith("wrote [out]/digits-1.0.0.edgebundle (")
    shown = _ok(["bundle", "inspect", "[out]/digits-1.0.0.edgebundle"]).splitlines()
    assert "labels: [zero], d1, d2, d3, d4, d5, d6, d7, d8, d9" in shown
    assert any(line.startswith("source: onnx net[1].onnx  target:") for line in shown)
    assert any("│ in  │ input  │ float32 │ [batch, 1, 8, 8] │" in line for line in shown), shown


def test_compress_prints_a_bracketed_source_and_output_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DIGITS / "mlp.onnx", tmp_path / "mlp[1].onnx")
    printed = _ok(["compress", "mlp[1].onnx", "-o", "[c]", "--mode", "fp16", "--no-bundle", *FAST])
    assert "edgekit compress: mlp[1].onnx  (" in printed
    assert printed.strip().splitlines()[-1].startswith("wrote [c]/model.onnx (fp16): ")


def test_telemetry_tables_print_a_bracketed_database_and_model_as_written(tmp_path, monkeypatch):
    from edgekit.telemetry.messages import parse_message
    from edgekit.telemetry.store import open_store
    from tests.edgekit.telemetry.sample import encode, state, topic, window

    monkeypatch.chdir(tmp_path)
    (tmp_path / "[db]").mkdir()
    doc = window(1)
    doc["model"]["name"] = "digits[cnn]"
    with open_store("[db]/t.db") as store:
        online = parse_message(topic("state"), encode(state("online")), received=0.0).state
        store.add_windows(parse_message(topic(), encode(doc), received=0.0).windows, [online])
    shown = _ok(["telemetry", "show", "--db", "[db]/t.db"])
    assert shown.startswith("telemetry in [db]/t.db")
    (pi7,) = [line for line in shown.splitlines() if "pi-7" in line]
    assert "│ online │ digits[cnn] 1.0.0 │" in pi7
    (pi7,) = [line for line in _ok(["fleet", "devices", "--db", "[db]/t.db"]).splitlines() if "pi-7" in line]
    assert "│ online │ digits[cnn] 1.0.0 │" in pi7
