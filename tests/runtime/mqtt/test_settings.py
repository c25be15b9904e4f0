"""Broker URLs, credentials and TLS files are checked when the settings are made."""

from __future__ import annotations

import pytest

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.mqtt.settings import HOST_OPTIONS, MqttSettings


@pytest.fixture
def pem(tmp_path):
    """Three files standing in for a CA, a client certificate and its key (only their presence is checked)."""
    paths = []
    for name in ("ca.pem", "client.pem", "client.key"):
        path = tmp_path / name
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    ("url", "address", "tls"),
    [
        ("mqtt://broker.lan", ("broker.lan", 1883), False),
        ("mqtts://broker.lan", ("broker.lan", 8883), True),
        ("mqtt://broker.lan:1884", ("broker.lan", 1884), False),
        ("mqtts://broker.lan:443/", ("broker.lan", 443), True),
        ("mqtt://10.0.0.5", ("10.0.0.5", 1883), False),
        ("mqtt://[::1]:1885", ("::1", 1885), False),
    ],
)
def test_a_broker_url_gives_host_port_and_tls(url, address, tls):
    settings = MqttSettings(url)
    assert settings.address() == address
    assert settings.tls is tls
    assert settings.v5


def test_credentials_come_from_the_url_with_percent_escapes():
    settings = MqttSettings("mqtt://pi%407:p%3As%2Fs%40w@broker.lan")
    assert settings.credentials() == ("pi@7", "p:s/s@w")


def test_the_password_can_come_from_a_file(tmp_path):
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret\n")
    assert MqttSettings("mqtt://broker.lan", username="pi-7", password_file=secret).credentials() == ("pi-7", "s3cret")
    # a user in the URL wins over --mqtt-username; the file still gives the password
    assert MqttSettings("mqtt://ops@broker.lan", username="pi-7", password_file=secret).credentials() == (
        "ops",
        "s3cret",
    )
    # a password in the URL wins over the file
    assert MqttSettings("mqtt://ops:url@broker.lan", password_file=secret).credentials() == ("ops", "url")


def test_no_credentials_at_all():
    assert MqttSettings("mqtt://broker.lan").credentials() == (None, None)


def test_safe_url_hides_the_password():
    settings = MqttSettings("mqtts://pi-7:hunter2@broker.lan")
    assert settings.safe_url == "mqtts://broker.lan:8883"
    assert "hunter2" not in settings.safe_url
    assert "pi-7" not in settings.safe_url


def test_tls_files_are_accepted_with_mqtts(pem):
    ca, cert, key = pem
    settings = MqttSettings("mqtts://broker.lan", ca_file=ca, cert_file=cert, key_file=key, protocol="3.1.1")
    assert settings.tls
    assert not settings.v5


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker.lan", "is not a broker URL: use mqtt://HOST"),
        ("broker.lan:1883", "is not a broker URL"),
        ("mqtt://", "is not a broker URL"),
        ("mqtt://:1883", "is not a broker URL"),
        ("mqtt://broker.lan/telemetry", "has a path or query"),
        ("mqtt://broker.lan?tls=1", "has a path or query"),
        ("mqtt://broker.lan#x", "has a path or query"),
        ("mqtt://broker.lan:99999", "not a TCP port: use 1 to 65535"),
        ("mqtt://broker.lan:port", "not a TCP port"),
        ("mqtt://broker.lan:-1", "not a TCP port"),
        ("mqtt://broker.lan:0", "not a TCP port"),
    ],
)
def test_bad_urls_are_refused(url, message):
    with pytest.raises(ConfigError, match=message) as refused:
        MqttSettings(url)
    assert str(refused.value).startswith(f"--mqtt '{url}'")


def test_a_client_certificate_needs_its_key_and_the_key_its_certificate(pem):
    _, cert, key = pem
    with pytest.raises(ConfigError, match="needs both --mqtt-cert and --mqtt-key"):
        MqttSettings("mqtts://broker.lan", cert_file=cert)
    with pytest.raises(ConfigError, match="needs both --mqtt-cert and --mqtt-key"):
        MqttSettings("mqtts://broker.lan", key_file=key)


def test_tls_files_with_plain_mqtt_are_refused(pem):
    ca, cert, key = pem
    with pytest.raises(ConfigError, match="need TLS: use an mqtts:// URL"):
        MqttSettings("mqtt://broker.lan", ca_file=ca)
    with pytest.raises(ConfigError, match="need TLS"):
        MqttSettings("mqtt://broker.lan", cert_file=cert, key_file=key)


@pytest.mark.parametrize("field", ["password_file", "ca_file", "cert_file", "key_file"])
def test_missing_files_are_refused_with_their_flag(tmp_path, field):
    flag = {"password_file": "--mqtt-password-file", "ca_file": "--mqtt-ca"}.get(field) or (
        "--mqtt-cert" if field == "cert_file" else "--mqtt-key"
    )
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match="no such file") as refused:
        MqttSettings("mqtts://broker.lan", **{field: missing})
    assert str(refused.value) == f"{flag} {missing}: no such file"


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(ConfigError, match=r"--mqtt-ca .*: no such file"):
        MqttSettings("mqtts://broker.lan", ca_file=tmp_path)


@pytest.mark.parametrize("protocol", ["3", "3.1", "5.0", "mqttv5", ""])
def test_unknown_protocols_are_refused(protocol):
    with pytest.raises(ConfigError, match=f"--mqtt-protocol {protocol} is unknown: use 5 or 3.1.1"):
        MqttSettings("mqtt://broker.lan", protocol=protocol)


@pytest.mark.parametrize("keepalive", [0, 4, 65536])
def test_keepalive_out_of_range_is_refused(keepalive):
    with pytest.raises(ConfigError, match=f"keepalive {keepalive} is out of range"):
        MqttSettings("mqtt://broker.lan", keepalive=keepalive)


def test_the_hosts_settings_name_the_hosts_options(pem):
    ca, cert, _ = pem
    with pytest.raises(ConfigError) as bad_url:
        MqttSettings("http://me:hunter2@broker.lan", options=HOST_OPTIONS)
    assert str(bad_url.value) == (
        "--broker 'http://broker.lan' is not a broker URL: use mqtt://HOST[:PORT], or mqtts:// for TLS"
    )
    with pytest.raises(ConfigError, match=r"^--ca and --cert need TLS: use an mqtts:// broker URL$"):
        MqttSettings("mqtt://broker.lan", ca_file=ca, options=HOST_OPTIONS)
    with pytest.raises(ConfigError, match=r"^a client certificate needs both --cert and --key"):
        MqttSettings("mqtts://broker.lan", cert_file=cert, options=HOST_OPTIONS)
    with pytest.raises(ConfigError, match=r"^keepalive 1 is out of range"):
        MqttSettings("mqtt://broker.lan", keepalive=1, options=HOST_OPTIONS)


def test_a_url_with_a_password_is_not_repeated_in_an_error():
    with pytest.raises(ConfigError) as refused:
        MqttSettings("mqtt://pi-7:hunter2@broker.lan/x")
    assert str(refused.value) == "--mqtt 'mqtt://broker.lan/x' has a path or query: give only mqtt://HOST[:PORT]"


def test_a_password_given_as_such_comes_after_the_urls(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    given = MqttSettings("mqtt://broker.lan", username="ops", password="hunter2", password_file=secret)  # noqa: S106
    assert given.credentials() == ("ops", "hunter2")
    assert "hunter2" not in repr(given)
    assert MqttSettings("mqtt://u:url@broker.lan", password="hunter2").credentials() == ("u", "url")  # noqa: S106


@pytest.mark.parametrize("client_id", ["", "x" * 257, "a\x00b"])
def test_client_ids_that_cannot_be_are_refused(client_id):
    with pytest.raises(ConfigError, match=r"--client-id .* is not a client id: use 1 to 256 characters"):
        MqttSettings("mqtt://broker.lan", client_id=client_id)


def test_an_upper_case_scheme_still_means_tls():
    assert MqttSettings("MQTTS://broker.lan").tls
    assert MqttSettings("MQTTS://broker.lan").address() == ("broker.lan", 8883)
