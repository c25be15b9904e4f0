"""The collector's gap repair: ask devices, over the fleet channel, for windows the store lacks.

Every ``repair_interval`` seconds the repair thread reads the gaps in each device's ``seq`` among the windows
received in the last ``repair_horizon`` seconds (:mod:`edgekit.telemetry.gaps`). A gap whose next window arrived
more than ``repair_grace`` seconds ago (so one that fills by itself, out of order, is not asked for) is asked for
with a ``resend`` command on ``edgekit/{fleet}/{device}/cmd``, signed with the fleet's key like every command
(:func:`edgekit_runtime.fleet.signed_command.seal`: bound to the device, fresh and used once), at most
:data:`~edgekit_runtime.contract.commands.MAX_RESEND_WINDOWS` windows per command. The device sends what it still
keeps through its outbox, and answers with a ``done`` event naming what it no longer has; the writer stores those
``seq`` as lost, so they are counted and not asked for again. An unanswered gap is asked again with a backoff (up
to every ``MAX_RETRY`` seconds) while it lies within the horizon. A device that refuses (one started without
``--trust``, or trusting another key) is logged once and left alone for ``MAX_RETRY`` seconds.

Without a signing key there is no repair: the gaps are logged once per device, with what to do. In a shared
subscription (``share``) repair is off unless ``repair`` says otherwise: collectors of a group that store into
separate databases each see only part of every device's windows, and would ask for the others' share.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from edgekit_runtime.contract.commands import MAX_RESEND_RANGES, MAX_RESEND_WINDOWS
from edgekit_runtime.fleet.signed_command import seal
from edgekit_runtime.telemetry.seq_ranges import capped, size

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgekit.telemetry.collector.settings import CollectorSettings
    from edgekit.telemetry.gaps import Gap
    from edgekit.telemetry.store import Store
    from edgekit_runtime.mqtt.connection import Connection

logger = logging.getLogger("edgekit.telemetry.collector")

#: the longest wait, in seconds, before a gap is asked for again, or a device that refused is asked at all
MAX_RETRY = 600.0

Key = tuple[str, str, int, int]


class Repair:
    """The repair thread's work: find gaps, ask for them, keep track of what was asked."""

    def __init__(
        self,
        settings: CollectorSettings,
        store: Store,
        connection: Connection,
        sign_key: Ed25519PrivateKey | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Ask through ``connection`` (the collector's), signing with ``sign_key`` (``None``: only log the gaps)."""
        self.settings = settings
        self.store = store
        self.connection = connection
        self.sign_key = sign_key
        self.clock = clock
        #: resend commands published, and the windows they asked for
        self.requests = 0
        self.windows_asked = 0
        #: gap → (when it may be asked again, how often it was asked)
        self._asked: dict[Key, tuple[float, int]] = {}
        #: device → until when it is not asked (it refused)
        self._quiet: dict[tuple[str, str], float] = {}
        self._refusals_seen: dict[tuple[str, str], float] = {}
        self._warned: set[tuple[str, str]] = set()

    def run(self, stopping: threading.Event, subscribed: threading.Event) -> None:
        """Look for gaps every ``repair_interval`` seconds while subscribed, until ``stopping``."""
        if not self.settings.repairing:
            logger.info(
                "gap repair is off%s", " (a shared subscription: --repair turns it on)" * bool(self.settings.share)
            )
            return
        while not stopping.wait(self.settings.repair_interval):
            if not subscribed.is_set():
                continue
            try:
                self.tick()
            except Exception:  # a store that is restarting, or a bug: the next turn tries again
                logger.exception("gap repair failed this turn; trying again in %.0f s", self.settings.repair_interval)

    def tick(self) -> int:
        """One look: ask for what is due; how many resend commands were published."""
        now = self.clock()
        since = now - self.settings.repair_horizon
        self._note_refusals(since, now)
        due: dict[tuple[str, str], list[Gap]] = defaultdict(list)
        current: set[Key] = set()
        for gap in self.store.gaps(since):
            key = (gap.fleet, gap.device, gap.first, gap.last)
            current.add(key)
            if gap.noticed > now - self.settings.repair_grace or self._quiet.get(key[:2], 0.0) > now:
                continue
            if self._asked.get(key, (0.0, 0))[0] <= now:
                due[key[:2]].append(gap)
        self._asked = {key: value for key, value in self._asked.items() if key in current}
        published = 0
        for (fleet, device), found in due.items():
            if self.sign_key is None:
                self._warn_unsigned(fleet, device, found)
                continue
            ranges = capped([(g.first, g.last) for g in found], MAX_RESEND_WINDOWS, MAX_RESEND_RANGES)
            body = {"id": f"resend-{secrets.token_hex(8)}", "command": "resend", "ranges": [list(r) for r in ranges]}
            payload = seal(body, self.sign_key, fleet=fleet, target=device)
            delivery = self.connection.publish(f"edgekit/{fleet}/{device}/cmd", payload, qos=1)
            if not delivery.sent:
                return published  # not connected: the next turn asks again
            logger.info(
                "asked %s/%s to send %d missing windows again (%s)",
                fleet,
                device,
                size(ranges),
                ", ".join(f"{a}-{b}" for a, b in ranges[:5]),
            )
            published += 1
            self.requests += 1
            self.windows_asked += size(ranges)
            for gap in found:
                key = (gap.fleet, gap.device, gap.first, gap.last)
                attempts = self._asked.get(key, (0.0, 0))[1] + 1
                wait = min(MAX_RETRY, max(self.settings.repair_interval, self.settings.repair_grace) * 2**attempts)
                self._asked[key] = (now + wait, attempts)
        return published

    def _note_refusals(self, since: float, now: float) -> None:
        for refusal in self.store.resend_refusals(since):
            device = (refusal.fleet, refusal.device)
            if refusal.received <= self._refusals_seen.get(device, 0.0):
                continue
            self._refusals_seen[device] = refusal.received
            self._quiet[device] = now + MAX_RETRY
            logger.warning(
                "%s/%s refused to send missing windows again (%s): its gaps stay unrepaired; asking again in %.0f s",
                refusal.fleet,
                refusal.device,
                refusal.detail,
                MAX_RETRY,
            )

    def _warn_unsigned(self, fleet: str, device: str, found: list[Gap]) -> None:
        if (fleet, device) in self._warned:
            return
        self._warned.add((fleet, device))
        logger.warning(
            "%s/%s: %d windows missing (seq %d-%d first); cannot ask for them without the fleet's key: collect with "
            "--sign-key FLEET.key (or EDGEKIT_SIGN_KEY)",
            fleet,
            device,
            sum(g.windows for g in found),
            found[0].first,
            found[0].last,
        )
