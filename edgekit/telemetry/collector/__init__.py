"""The collector: subscribe to the fleet's telemetry and events, and store every window exactly once, losing none.

Two threads (:mod:`.service`). The **network** thread (:mod:`.network`) runs the MQTT side through the one MQTT
layer (:mod:`edgekit_runtime.mqtt`): MQTT 5 with a persistent session (``clean_start=False``), QoS 1 subscriptions,
each message put in a queue, and the acknowledgements the writer hands back sent. When the broker goes away it
reconnects with exponential backoff and full jitter. The **writer** thread (:mod:`.writer`) waits up to
``max_delay`` for a message, takes everything queued behind it (at most ``max_batch`` messages; what arrived during
the last commit is the next batch), parses it, commits it to the :class:`~edgekit.telemetry.store.Store` in one
transaction, and only then asks for the PUBACKs (``manual_ack=True``). A collector that dies before a commit has
acknowledged nothing, so the broker sends those messages again; a window that arrives twice is stored once (the
store is idempotent on ``(fleet, device, seq)``). Command events (``.../events``) take the same path, idempotent on
``(fleet, device, id, status)``.

An acknowledgement is only sent on the connection its message came in on; a message committed after its connection
was lost is sent again by the broker on the next one, then stored as a duplicate and acknowledged. A message that
is not a valid edgekit message is logged, counted as rejected and acknowledged (sending it again would not make it
valid). So is one whose payload names another fleet or device than its topic (a window, a batch or one of its
windows, a state, an event), and it is counted as ``spoofed`` as well (:mod:`.spoof`): with one broker account per
device (``edgekit fleet provision``) the topic says who sent it, so a device cannot store windows (or a future
``seq``, which would make the real ones look like duplicates) in another's name. A store that fails (PostgreSQL
restarting) is retried with backoff, holding the batch unacknowledged.

The session outlives the collector only with a stable ``client_id``: a generated one (host and process id) gets a
session expiry of 0, since no later run would resume it, and an orphan session would keep receiving its share of a
shared subscription (Mosquitto queues shared messages for offline members too).

What to connect to and subscribe to is :class:`CollectorSettings` (:mod:`.settings`), which the operator's fleet
commands use too.
"""

from edgekit.telemetry.collector.service import Collector
from edgekit.telemetry.collector.settings import CollectorSettings
from edgekit.telemetry.collector.spoof import foreign_claim
from edgekit.telemetry.collector.writer import CollectorCounts

__all__ = ["Collector", "CollectorCounts", "CollectorSettings", "foreign_claim"]
