"""Device to collector over TLS only: client certificates and passwords on both sides, a wrong CA refused."""

from __future__ import annotations

import sqlite3

import orjson

from edgekit.telemetry.collector import Collector, CollectorSettings
from edgekit.telemetry.store import open_store
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.telemetry.mqtt import Topics
from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.publisher import Publisher, PublisherSettings
from edgekit_runtime.telemetry.recorder import Identity, Recorder
from tests.certs import make_pki
from tests.integration.rig import wait_for


def test_windows_cross_tls_with_client_certificates_on_both_sides(tls_mosquitto, tmp_path):
    broker, pki = tls_mosquitto
    collector_settings = CollectorSettings(
        broker=broker.tls_url,
        username="collector",
        password="s3cret",  # noqa: S106
        ca_file=pki / "ca.pem",
        cert_file=pki / "client.pem",
        key_file=pki / "client.key",
        client_id="tls-collector",
    )
    (tmp_path / "pw").write_text("device-pw\n")
    device = MqttSettings(
        broker.tls_url,
        username="pi-1",
        password_file=tmp_path / "pw",
        ca_file=pki / "ca.pem",
        cert_file=pki / "client.pem",
        key_file=pki / "client.key",
    )
    db = tmp_path / "telemetry.db"
    with open_store(db) as store, Collector(collector_settings, store) as collector:
        assert collector.wait_ready(10)
        with Outbox(tmp_path / "outbox.db") as outbox:
            recorder = Recorder(outbox, Identity("lab", "pi-1", {"name": "m"}, "0"))
            for requests in (3, 5):
                for _ in range(requests):
                    recorder.record(0.001)
                recorder.close_window()
            publisher = Publisher(outbox, device, Topics("lab", "pi-1"), state={"model": {"name": "m"}})
            publisher.start()
            try:
                wait_for(lambda: collector.counts.stored == 2, 20, "2 windows stored over TLS")
            finally:
                publisher.stop()
            assert outbox.count == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT seq, requests FROM telemetry ORDER BY seq").fetchall() == [(1, 3), (2, 5)]


def test_a_broker_certificate_from_another_ca_is_refused(tls_mosquitto, tmp_path):
    broker, _ = tls_mosquitto
    other = make_pki(tmp_path / "other")
    settings = MqttSettings(broker.tls_url, ca_file=other / "ca.pem")
    with Outbox(tmp_path / "outbox.db") as outbox:
        outbox.append(orjson.dumps({"requests": 1}))
        quick = PublisherSettings(backoff_initial=0.1, backoff_max=0.2, drain_seconds=0.1)
        publisher = Publisher(outbox, settings, Topics("lab", "pi-1"), settings=quick)
        publisher.start()
        try:
            wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in publisher.stats.last_error, 10, "the TLS refusal")
        finally:
            publisher.stop()
        assert outbox.count == 1
    assert publisher.stats.connects == 0
