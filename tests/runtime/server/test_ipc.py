"""The worker channel: requests and replies across a socket pair, refusals, and the end of the other side."""

from __future__ import annotations

import socket
import threading
from multiprocessing.connection import Connection

import pytest

from edgekit_runtime.errors import BundleError, WorkerError
from edgekit_runtime.server.ipc import Channel


def _pair(**theirs):
    a, b = socket.socketpair()
    ended = threading.Event()
    ours = Channel(Connection(a.detach()), on_end=ended.set)
    other = Channel(Connection(b.detach()), **theirs)
    ours.start()
    other.start()
    return ours, other, ended


def test_requests_from_several_threads_get_their_own_answers():
    ours, other, _ = _pair(on_request={"double": lambda n: 2 * n})
    answers = {}
    threads = [threading.Thread(target=lambda i=i: answers.update({i: ours.request("double", i)})) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: 2 * i for i in range(20)}
    ours.close()
    other.close()


def test_a_refusal_is_a_worker_error_with_its_reason():
    def refuse(_):
        raise BundleError("manifest.sig is missing: sign the bundle")

    ours, other, _ = _pair(on_request={"swap": refuse})
    with pytest.raises(WorkerError, match=r"manifest\.sig is missing"):
        ours.request("swap", "b.edgebundle")
    with pytest.raises(WorkerError, match="unknown request 'nothing'"):
        ours.request("nothing")
    ours.close()
    other.close()


def test_messages_arrive_in_order_and_the_end_fails_what_waits():
    got = []
    hang = threading.Event()
    ours, other, ended = _pair(on_message={"records": got.append}, on_request={"hang": lambda _: hang.wait()})
    for i in range(100):
        ours.send("records", [i])
    failed = []

    def ask() -> None:
        try:
            ours.request("hang")
        except WorkerError as exc:
            failed.append(str(exc))

    asker = threading.Thread(target=ask)
    asker.start()
    threading.Event().wait(0.2)
    other.close()  # the other side ends: the request in flight fails, it does not hang
    asker.join(10)
    assert failed == ["the worker channel ended"]
    assert ended.wait(10)
    assert got == [[i] for i in range(100)]
    with pytest.raises(WorkerError):
        ours.request("hang")
    ours.close()
    hang.set()
