"""The ``resend`` command: only signed, bounded, and it can only put this device's own windows back in its queue."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit_runtime.fleet.resend import ResendCommand
from edgekit_runtime.fleet.signed_command import seal
from edgekit_runtime.telemetry.outbox import Outbox


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path / "outbox.db") as box:
        seqs = [box.append(b'{"n":%d}' % i) for i in range(6)]
        box.ack(seqs[:4])  # 1..4 sent and kept; 5 and 6 waiting
        yield box


def signed(key, body, target="pi-1"):
    return seal(body, key, fleet="lab", target=target)


def test_a_signed_resend_requeues_what_is_kept_and_names_what_is_gone(gated, owner, outbox):
    agent, publisher, _ = gated
    agent.commands["resend"] = ResendCommand(outbox, agent.emit).run
    agent.take("pi-1", signed(owner, {"id": "r1", "command": "resend", "ranges": [[2, 3], [5, 5], [8, 9]]}))
    ((_, event),) = publisher.sent
    assert (event["id"], event["command"], event["status"]) == ("r1", "resend", "done")
    assert event["resent"] == {"resent": 3, "gone": [[8, 9]]}
    assert event["detail"] == "2 windows go again, 1 were waiting anyway; 2 no longer kept (8-9)"
    assert [e.seq for e in outbox.pending()] == [2, 3, 5, 6]


@pytest.mark.parametrize(
    ("ranges", "refusal"),
    [
        ([[3, 2]], "resend range [3, 2] runs backwards"),
        ([[1, 20_000]], "resend asks for 20000 windows, over the 10000 one command may"),
        ([[0, 2]], "the resend command is malformed"),
        ([], "the resend command is malformed"),
        ([[1, 1]] * 65, "the resend command is malformed"),
        ("1-2", "the resend command is malformed"),
    ],
)
def test_a_malformed_or_oversized_resend_is_refused_and_changes_nothing(gated, owner, outbox, ranges, refusal):
    agent, publisher, _ = gated
    agent.commands["resend"] = ResendCommand(outbox, agent.emit).run
    agent.take("pi-1", signed(owner, {"id": "r2", "command": "resend", "ranges": ranges}))
    ((_, event),) = publisher.sent
    assert event["status"] == "refused"
    assert event["detail"].startswith(refusal)
    assert [e.seq for e in outbox.pending()] == [5, 6]


def test_an_unsigned_or_foreign_resend_is_refused(gated, outbox):

    agent, publisher, _ = gated
    agent.commands["resend"] = ResendCommand(outbox, agent.emit).run
    stranger = Ed25519PrivateKey.generate()
    agent.take("pi-1", signed(stranger, {"id": "r3", "command": "resend", "ranges": [[1, 4]]}))
    agent.take("pi-1", b'{"id": "r4", "command": "resend", "ranges": [[1, 4]]}')
    assert [doc["status"] for _, doc in publisher.sent] == ["refused", "refused"]
    assert [e.seq for e in outbox.pending()] == [5, 6]


def test_a_resend_for_another_device_is_refused(gated, owner, outbox):
    agent, publisher, _ = gated
    agent.commands["resend"] = ResendCommand(outbox, agent.emit).run
    agent.take("pi-1", signed(owner, {"id": "r5", "command": "resend", "ranges": [[1, 4]]}, target="pi-2"))
    assert [doc["status"] for _, doc in publisher.sent] == ["refused"]
    assert [e.seq for e in outbox.pending()] == [5, 6]
