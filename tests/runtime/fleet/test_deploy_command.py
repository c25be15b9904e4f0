"""A deploy's body decoded into the contract's ``Deploy``: each field that is not allowed is refused by name."""

from __future__ import annotations

import pytest

from edgekit_runtime.errors import CommandError
from edgekit_runtime.fleet.deploy_command import DeployCommand

SHA = "a" * 64
BODY = {
    "command": "deploy",
    "source": f"mqtt:{SHA}",
    "sha256": SHA,
    "size": 10,
    "id": "d1",
    "fleet": "lab",
    "target": "pi-1",
    "issued_at": 1795000000.0,
    "nonce": "0" * 32,
}


def test_a_deploy_body_is_decoded_and_what_it_does_not_name_is_ignored():
    command = DeployCommand.from_body("d1", {**BODY, "allow_downgrade": True, "newer_field": 1})
    assert command == DeployCommand("d1", f"mqtt:{SHA}", SHA, 10, allow_downgrade=True)
    url = "https://example.com/b.edgebundle"
    assert DeployCommand.from_body("d1", {**BODY, "source": url}).source == url


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"source": 5}, "a deploy needs 'source', mqtt:SHA256 or an http(s) URL of at most 2048 characters"),
        ({"source": ""}, "a deploy needs 'source'"),
        ({"source": "x" * 3000}, "at most 2048 characters"),
        ({"source": "/etc/shadow"}, "not '/etc/shadow': a path on the device is never taken from the network"),
        ({"source": "file:///etc/shadow"}, "never taken from the network"),
        ({"source": "http://has space"}, "never taken from the network"),
        ({"sha256": "A" * 64}, "a deploy needs 'sha256', the bundle file's (64 lowercase hex digits)"),
        ({"sha256": None}, "a deploy needs 'sha256'"),
        ({"size": 0}, "a deploy needs 'size', the bundle file's bytes (a whole number > 0)"),
        ({"size": True}, "a deploy needs 'size'"),
        ({"size": 10.0}, "a deploy needs 'size'"),
        ({"allow_downgrade": "yes"}, "allow_downgrade and allow_schema_change are true or false"),
        ({"allow_schema_change": 1}, "allow_downgrade and allow_schema_change are true or false"),
        ({"nonce": "x"}, "the deploy command is malformed"),
    ],
)
def test_a_field_that_is_not_allowed_is_refused_naming_it(change, words):
    with pytest.raises(CommandError) as caught:
        DeployCommand.from_body("d1", {**BODY, **change})
    assert words in str(caught.value)
    assert caught.value.command_id == "d1"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("field", ["source", "sha256", "size"])
def test_a_missing_field_is_refused_naming_it(field):
    with pytest.raises(CommandError, match=f"a deploy needs '{field}'"):
        DeployCommand.from_body("d1", {k: v for k, v in BODY.items() if k != field})


def test_a_bundle_over_the_devices_limit_is_refused():
    with pytest.raises(CommandError, match="the bundle is 11 bytes, over this device's 10-byte limit"):
        DeployCommand.from_body("d1", {**BODY, "size": 11}, max_bytes=10)
    assert DeployCommand.from_body("d1", BODY, max_bytes=10).size == 10
