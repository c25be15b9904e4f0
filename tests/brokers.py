"""A real Mosquitto for the MQTT tests: its own config, a free loopback port, and a kill switch.

Never the machine's shared broker on 1883: fault tests kill theirs. Each broker keeps its sessions in its own
folder (``persistence true``, ``autosave_interval 1``: saved a second or two after a change; see
:meth:`Mosquitto.wait_saved`), as a production broker would, so a collector's persistent
session outlives a broker restart; :meth:`Mosquitto.kill` is SIGKILL, which skips the save on exit.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """One broker process on ``127.0.0.1:port``; stop and start it again on the same port and folder."""

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        *,
        anonymous: bool = True,
        extra: str = "",
        include: Path | None = None,
        persistence: bool = True,
    ) -> None:
        """``extra``: more configuration lines (TLS files, a password file) for the one listener.

        ``persistence``: whether it saves sessions and queued messages (every second); without, a restart forgets all.

        ``include``: a folder whose ``*.conf`` files name the listener, and who may log in, themselves (what
        ``edgekit fleet provision`` writes, for ``port``): they are read instead of this broker's listener lines.
        """
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = folder / "mosquitto.conf"
        listener = (
            f"listener {self.port} 127.0.0.1\nallow_anonymous {'true' if anonymous else 'false'}\n"
            if include is None
            else f"include_dir {include}\n"
        )
        saving = (
            f"persistence true\npersistence_location {folder}/\nautosave_interval 1\n"
            if persistence
            else "persistence false\n"
        )
        self.config.write_text(
            f"{listener}"
            # started as root, Mosquitto switches to its own user, who cannot write in the test's folder
            "user root\n"
            f"{saving}"
            "max_queued_messages 100000\n"
            f"log_dest file {folder}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            f"{extra}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        """``mqtts://127.0.0.1:PORT`` (for a broker given TLS files in ``extra``)."""
        return f"mqtts://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker with ``sig`` (SIGTERM saves its sessions; SIGKILL does not) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def wait_saved(self, after: float, timeout: float = 10.0) -> None:
        """Wait until the broker has saved its state (``mosquitto.db``) later than ``after`` (a ``time.time()``)."""
        db = self.folder / "mosquitto.db"
        deadline = time.monotonic() + timeout
        while not (db.exists() and db.stat().st_mtime > after):
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not save its state within {timeout} s: {self.log()}")
            time.sleep(0.05)

    def reload(self) -> None:
        """SIGHUP: the broker reads its password file and ACL again (it logs nothing; retry a login to wait)."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("mosquitto is not running: start it first")
        self.proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a power cut."""
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """The broker's log so far."""
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""
