"""A doc's commands, run as a reader would run them, in a scratch folder: real processes, real HTTP.

:meth:`DocShell.run` takes one command as the doc writes it and changes nothing in it but

- **swaps**: placeholders the doc names (``model.onnx``, ``mqtts://broker.example:8883``, ``/etc/edgekit/keys``)
  become the real thing the test made, whole words only, and each swap must be used; ``.venv/bin/`` is the test's
  own virtual environment's ``bin``;
- **ports**: ``edgekit-runtime serve`` gets ``--port 0`` (the kernel's free port) in place of the doc's port
  (8080 when it names none), and a ``curl`` to ``localhost:DOC_PORT`` goes to that server;
- **tweaks** a test names per command, each one visible in the test: options added for speed
  (``--seconds 0.2``), an exit code other than 0 that the doc promises, a command that runs until Ctrl-C stopped
  after a while.

What the shell does with each kind of command:

- ``edgekit-runtime serve …`` (with or without ``&``): started in the background, its ``serving …`` line waited
  for (:class:`ServeProcess`, which also gives it its own ``--state-dir`` unless the doc names one);
- ``curl …``: the same request (method, headers, body) sent with httpx, no curl needed;
- ``pip install …`` (and ``python3 -m venv DIR &&`` before it): not run (no network, and the test's own virtual
  environment must not change); each local path or project it names must exist with the extras it asks for;
- ``export NAME=VALUE``, ``source .venv/bin/activate``: change the shell's environment (``edgekit`` and
  ``edgekit-runtime`` are always the test's own, from its virtual environment's ``bin``);
- ``bash tools/dev.sh demo``: the real script, with the set-up steps of its ``demo)`` arm (the script's own
  functions it calls: system packages, the virtual environment) stubbed out, since the test's machine is set up
  already; ``EDGEKIT_VENV`` names the test's virtual environment, so the script runs the test's ``edgekit``;
- anything else ending in ``&``: started in the background, stopped at the end;
- anything else: ``bash -c COMMAND`` in the scratch folder, and its exit code must be 0 (or the tweak's).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from tests.docs.blocks import ROOT
from tests.docs.packages import check_pip_line
from tests.runtime.server.process import ServeProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path

    from typing_extensions import Self

    from tests.docs.blocks import Block

BIN = os.path.dirname(sys.executable)  # noqa: PTH120  (a string: it goes on PATH)
#: the longest a command that runs until Ctrl-C waits for what its test waits for
STOP_WITHIN = 30.0


@dataclass(frozen=True)
class Tweak:
    """What a test changes about one command of a doc: said in the test, next to why."""

    extra: tuple[str, ...] = ()  # options appended (for speed)
    expect: int = 0  # the exit code the doc promises
    stop_when: Callable[[], object] | None = None  # a command that runs until Ctrl-C: SIGINT once this is true


#: ``edgekit compress`` times each model 1.5 s per batch size by default; the docs' tests check no latency figures
QUICK_COMPRESS = {"edgekit compress": Tweak(extra=("--timing", "0.2"))}


@dataclass
class Result:
    """What one command gave."""

    command: str
    code: int = 0
    out: str = ""
    err: str = ""
    response: httpx.Response | None = None
    server: ServeProcess | None = None


@dataclass
class DocShell:
    """One reader's shell session in ``cwd``; a context manager that stops what it started in the background."""

    cwd: Path
    swaps: Mapping[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    servers: dict[str, ServeProcess] = field(default_factory=dict)  # the doc's port -> its server
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    swapped: set[str] = field(default_factory=set)  # the swaps some command had

    def __post_init__(self) -> None:
        self.logs = self.cwd.with_name(f"{self.cwd.name}-logs")
        self.logs.mkdir(exist_ok=True)
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **self.env}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.stop()
        unused = sorted(set(self.swaps) - self.swapped)
        assert kind is not None or not unused, f"no command had {unused}: the doc changed; update the test's swaps"

    def stop(self) -> None:
        """Stop every server and background command (SIGTERM, as Ctrl-C or systemd would)."""
        for server in self.servers.values():
            server.stop()
        for process in self.background:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        self.servers.clear()
        self.background.clear()

    def play(self, block: Block, tweaks: Mapping[str, Tweak] | None = None) -> list[Result]:
        """Run every command of ``block`` in order; ``tweaks`` by a command's first words (each must match one)."""
        tweaks = dict(tweaks or {})
        unused = set(tweaks)
        results = []
        for command in block.commands():
            words = " ".join(shlex.split(command, comments=True))
            hits = [start for start in tweaks if words.startswith(start)]
            unused -= set(hits)
            results.append(self.run(command, tweaks[hits[0]] if hits else Tweak()))
        assert not unused, f"{block.key} has no command starting with {sorted(unused)}: update the test's tweaks"
        return results

    def run(self, command: str, tweak: Tweak = Tweak()) -> Result:  # noqa: PLR0911  (a branch per kind of command)
        """Run one command of a doc (see the module's docstring for what each kind does)."""
        if "pip install" in command:
            return Result(command, out=check_pip_line(command))
        command = self.swap(command)
        words = shlex.split(command, comments=True)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.env[name] = value
            return Result(command)
        if words[0] in {"source", "."}:
            assert words[1].endswith("bin/activate"), command
            return Result(command)  # the test's own virtual environment is on PATH already
        if words[0] == "curl":
            return self.curl(command, words[1:])
        if words[:2] == ["edgekit-runtime", "serve"]:
            return self.serve(command, [*words[2:], *tweak.extra])
        if words[:2] == ["bash", "tools/dev.sh"]:
            return self.dev_sh(command, words[2:], tweak)
        if tweak.extra:
            assert "$" not in command, f"options added to a command with shell expansions: {command}"
            command = shlex.join([*words, *tweak.extra])
        if words[-1] == "&":
            return self.start(command, words[:-1])
        return self.wait(command, ["bash", "-c", command], tweak)

    def swap(self, command: str) -> str:
        """``command`` with each placeholder replaced by what the test gave for it, as a whole word.

        ``.venv/bin/`` is always the test's own virtual environment's ``bin``.
        """
        command = re.sub(r"(?<![\w./$-])\.venv/bin/", f"{BIN}/", command)
        for old, new in self.swaps.items():
            command, count = re.subn(rf"(?<![\w./@-]){re.escape(old)}(?![\w@-]|\.\w)", new, command)
            if count:
                self.swapped.add(old)
        return command

    def wait(self, command: str, argv: list[str], tweak: Tweak) -> Result:
        """Run ``argv`` to its end (or Ctrl-C it once ``tweak.stop_when()``) and check its exit code."""
        with _ctrl_c_stops_children():
            process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # Ctrl-C goes to the group, as a terminal sends it: bash -c and what it runs
            )
        if tweak.stop_when is not None:
            deadline = time.monotonic() + STOP_WITHIN
            while process.poll() is None and not tweak.stop_when() and time.monotonic() < deadline:
                time.sleep(0.1)
            if time.monotonic() >= deadline:
                process.kill()
                out, err = process.communicate()
                raise AssertionError(f"{command}\nwhat it should do did not happen in {STOP_WITHIN} s\n{err[-3000:]}")
            os.killpg(process.pid, signal.SIGINT)
        try:
            out, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        assert process.returncode == tweak.expect, (
            f"{command}\nexit {process.returncode}, the doc promises {tweak.expect}\n{out[-3000:]}\n{err[-3000:]}"
        )
        return Result(command, process.returncode, out, err)

    def start(self, command: str, argv: list[str]) -> Result:
        """Start ``argv`` in the background, its output to a log; :meth:`stop` ends it."""
        log = self.logs / f"background-{len(self.background)}.log"
        with log.open("wb") as out:  # the child keeps its own copy
            self.background.append(subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=out, stderr=out))
        return Result(command)

    def serve(self, command: str, args: list[str]) -> Result:
        """``edgekit-runtime serve`` in the background on a free port, once it says it is serving."""
        if args and args[-1] == "&":
            args = args[:-1]
        port = "8080"
        if "--port" in args:
            at = args.index("--port") + 1
            port, args[at] = args[at], "0"
        else:
            args += ["--port", "0"]
        assert port not in self.servers, f"two servers on port {port} in one doc: {command}"
        server = ServeProcess(args, self.logs / f"serve-{port}.log", cwd=self.cwd)
        server.wait_ready()
        self.servers[port] = server
        return Result(command, out=server.ready_line, server=server)

    def curl(self, command: str, args: list[str]) -> Result:
        """The request ``curl ARGS`` makes, sent to the server started for its port; it must answer 2xx."""
        headers: dict[str, str] = {}
        method, body, url = "", None, ""
        flags = iter(args)
        for arg in flags:
            if arg in {"-s", "--silent", "-S", "--show-error", "-f", "--fail"}:
                continue
            if arg in {"-H", "--header"}:
                name, _, value = next(flags).partition(":")
                headers[name.strip()] = value.strip()
            elif arg in {"-d", "--data", "--data-raw", "--data-binary"}:
                body = next(flags)
            elif arg in {"-X", "--request"}:
                method = next(flags)
            else:
                assert not arg.startswith("-"), f"tests/docs/shell.py does not know curl's {arg}: {command}"
                url = arg
        parts = urlsplit(url if "://" in url else f"http://{url}")
        assert parts.hostname in {"localhost", "127.0.0.1"}, f"a request to another machine: {command}"
        port = str(parts.port or 80)
        assert port in self.servers, f"nothing was started on port {port} before: {command}"
        target = f"{self.servers[port].url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        method = method or ("POST" if body is not None else "GET")
        response = httpx.request(method, target, headers=headers, content=body, timeout=30)
        assert response.is_success, f"{command}\n{response.status_code}: {response.text}"
        return Result(command, out=response.text, response=response)

    def dev_sh(self, command: str, args: list[str], tweak: Tweak) -> Result:
        """``bash tools/dev.sh demo``: the real script in the scratch folder, the set-up steps of its arm stubbed."""
        assert args[:1] == ["demo"], f"only tools/dev.sh demo runs inside the tests: {command}"
        script = (ROOT / "tools" / "dev.sh").read_text()
        dispatch = script.index('\ncase "${1:-}" in')
        arm = re.search(r"^\s+demo\)\n(.*?);;", script[dispatch:], re.DOTALL | re.MULTILINE)
        assert arm, "tools/dev.sh has no demo) arm in its case"
        functions = set(re.findall(r"^(\w+)\(\) \{", script, re.MULTILINE))
        setup = [
            line.split()[0] for line in arm.group(1).splitlines() if line.split()[:1] and line.split()[0] in functions
        ]
        stubs = "".join(f"\n{name}() {{ :; }}  # set up already (tests/docs/shell.py)" for name in setup)
        (self.cwd / "tools").mkdir(exist_ok=True)
        (self.cwd / "tools" / "dev.sh").write_text(script[:dispatch] + stubs + script[dispatch:])
        self.env["EDGEKIT_VENV"] = str(sys.prefix)
        return self.wait(command, ["bash", "tools/dev.sh", *args], tweak)


@contextlib.contextmanager
def _ctrl_c_stops_children() -> Iterator[None]:
    """Children start with Ctrl-C's default action, as a terminal's foreground job does.

    A test run started in the background by a non-interactive shell (``bash .ci/run &``) ignores SIGINT, and
    its children inherit that: a command "until Ctrl-C" would never stop. The handler is put back at once.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
