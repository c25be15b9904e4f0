"""The nonces of the fleet commands a device has taken, kept on disk until those commands have expired.

``{state_dir}/commands.json``: ``{"since": T, "nonces": {NONCE: KEEP_UNTIL, ...}}``. A nonce is written down
(crash-safely: a temporary file, fsync, rename) *before* its command runs, so a command runs at most once even
when the device restarts in the middle of it, and a command retained on the broker, delivered again on every
reconnect, is refused as taken. A nonce is forgotten once its command is past its age limit: by then the age
check refuses it anyway.

A journal that cannot be read (damaged, or written by hand) is moved aside and a new one started with ``since`` set
to now: commands issued before that moment may have been taken already, so they are refused. Nothing is lost but
the few commands that were in flight.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit_runtime.errors import CommandError
from edgekit_runtime.fleet.models import write_atomically

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("edgekit_runtime.fleet")

JOURNAL = "commands.json"
#: nonces kept at most; a fleet owner sends far fewer commands within one age limit
MAX_ENTRIES = 10_000


class CommandJournal:
    """The nonces taken, and the moment before which no command is taken (a lost journal's)."""

    def __init__(
        self, state_dir: Path, *, clock: Callable[[], float] = time.time, max_entries: int = MAX_ENTRIES
    ) -> None:
        """Open (or start) the journal in ``state_dir``."""
        self.path = Path(state_dir) / JOURNAL
        self.clock = clock
        self.max_entries = max_entries
        self.since = 0.0
        self.nonces: dict[str, float] = {}
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._start_over(f"cannot be read ({exc.strerror or exc})")
            return
        try:
            doc = json.loads(text)
            since = float(doc["since"])
            nonces = {str(k): float(v) for k, v in dict(doc["nonces"]).items()}
            if not math.isfinite(since) or not all(map(math.isfinite, nonces.values())):
                raise ValueError("not finite")  # noqa: TRY301  (one path for every kind of damage)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._start_over(f"is damaged ({exc})")
            return
        self.since, self.nonces = since, nonces

    def _start_over(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.damaged")
        try:
            self.path.replace(aside)
        except OSError:
            aside = self.path
        self.since, self.nonces = self.clock(), {}
        logger.warning(
            "fleet: the command journal %s %s: kept as %s; commands issued before now are refused as possibly taken",
            self.path,
            why,
            aside,
        )

    def take(self, nonce: str, issued: float, *, keep_until: float) -> bool:
        """Record ``nonce`` (of a command issued at ``issued``) before its command runs; ``False``: taken before."""
        now = self.clock()
        self.nonces = {n: until for n, until in self.nonces.items() if until >= now}
        if nonce in self.nonces or issued < self.since:
            return False
        if len(self.nonces) >= self.max_entries:
            logger.warning(
                "fleet: %d commands within their age limit: refusing more until some expire", len(self.nonces)
            )
            return False
        self.nonces[nonce] = keep_until
        try:
            self._save()
        except OSError as exc:  # not written down, so not run: it could run twice otherwise
            del self.nonces[nonce]
            raise CommandError(
                f"the command journal {self.path} cannot be written ({exc.strerror or exc}): the command was not run; "
                "free space in the state directory and send it again"
            ) from None
        return True

    def _save(self) -> None:
        doc = {"since": self.since, "nonces": self.nonces}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, [json.dumps(doc, sort_keys=True).encode()])
