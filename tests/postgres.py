"""A real PostgreSQL for the store tests: a cluster of the session's own, on a free loopback port.

Never the machine's shared server: ``initdb`` makes a throwaway cluster (trust auth, no fsync) in a temporary
folder, ``postgres`` serves it on ``127.0.0.1:PORT`` with its unix socket in that folder, and :meth:`Postgres.stop`
shuts it down and removes the folder. The server binaries are Debian's (``/usr/lib/postgresql/*/bin``, from
``apt-get install postgresql``; ``tools/dev.sh test`` installs them). ``initdb`` refuses to run as root, so under
root both run as the ``postgres`` user that package creates, and the folder is theirs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.brokers import free_port

#: where Debian (and Ubuntu) put each major version's server binaries
BINARIES = "/usr/lib/postgresql/*/bin"
#: the fix, said in each error
INSTALL = "apt-get install postgresql (tools/dev.sh test does), or name a server in EDGEKIT_TEST_POSTGRES"


def server_binaries() -> Path:
    """The newest major version's ``bin`` folder that has ``initdb`` and ``postgres``."""
    found = [p.parent for p in Path("/").glob(BINARIES.lstrip("/") + "/initdb") if (p.parent / "postgres").is_file()]
    if not found:
        raise RuntimeError(f"no PostgreSQL server binaries under {BINARIES}: {INSTALL}")
    return max(found, key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0)


def _as_owner() -> dict[str, Any]:
    """What :func:`subprocess.run` needs to run as the cluster's owner: ``postgres`` under root, else the caller."""
    if os.geteuid() != 0:
        return {}
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(f"no 'postgres' user to run the test server as (initdb refuses root): {INSTALL}") from None
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


class Postgres:
    """One server on ``127.0.0.1:port`` with a database ``test``; user ``postgres``, no password."""

    def __init__(self, port: int | None = None) -> None:
        self.bin = server_binaries()
        self.owner = _as_owner()
        # not under pytest's tmp folder: that one is the caller's alone (0700), and postgres must reach its files
        self.folder = Path(tempfile.mkdtemp(prefix="edgekit-postgres-"))
        if self.owner:
            os.chown(self.folder, self.owner["user"], self.owner["group"])
        self.data = self.folder / "data"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/test``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/test"

    def start(self, timeout: float = 30.0) -> None:
        """``initdb`` (once), start the server, wait until it answers, and create the database ``test``."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(self.folder)}
        if not self.data.exists():
            argv = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
            done = subprocess.run(
                [*argv, "-E", "UTF8", "--no-locale", "--no-sync"],
                capture_output=True,
                text=True,
                cwd=self.folder,
                env=env,
                check=False,
                **self.owner,
            )
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.folder),
            # a throwaway cluster: nothing to keep over a crash, so no waiting on the disk
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with (self.folder / "postgres.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=self.folder, env=env, **self.owner)
        self._wait_and_create(timeout)

    def _wait_and_create(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log()}")
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=2) as db:
                    if db.execute("SELECT 1 FROM pg_database WHERE datname = 'test'").fetchone() is None:
                        db.execute("CREATE DATABASE test")
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    message = f"postgres did not answer on {self.port} within {timeout} s: {self.log()}"
                    raise RuntimeError(message) from exc
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected), then remove the cluster's folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        """The server's log so far."""
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""
