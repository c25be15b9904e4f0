"""Mosquitto's password hashes: the one ``mosquitto_passwd`` writes, ours, and what is not one."""

from __future__ import annotations

import re
import subprocess

import pytest

from edgekit.errors import ConfigError
from edgekit.fleet.broker_passwords import PasswordHash, new_password
from tests.brokers import MOSQUITTO_PASSWD

HASH = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")


def test_a_hash_mosquitto_passwd_wrote_is_the_one_we_compute(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    password = new_password()
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "pi-1", password], check=True, capture_output=True)
    user, theirs = passwd.read_text().strip().split(":", 1)
    parsed = PasswordHash.parse(theirs)
    assert user == "pi-1"
    assert HASH.fullmatch(theirs)  # mosquitto_passwd's own defaults: 101 rounds, a 12-byte salt
    assert parsed.matches(password)
    assert not parsed.matches(password + "x")
    assert str(parsed) == theirs
    assert str(PasswordHash.of(password, salt=parsed.salt, iterations=parsed.iterations)) == theirs


def test_new_hashes_have_mosquitto_s_form_and_their_own_salt():
    first, second = PasswordHash.of("s3cret"), PasswordHash.of("s3cret")
    assert HASH.fullmatch(str(first))
    assert first.salt != second.salt
    assert first.matches("s3cret")
    assert PasswordHash.parse(str(first)) == first
    assert "s3cret" not in repr(first)


def test_new_passwords_are_random_and_url_safe():
    passwords = {new_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", p) for p in passwords)


@pytest.mark.parametrize(
    "text",
    ["", "$6$abc$def", "$7$$AAAA$" + "A" * 88, "$7$101$!!!!$" + "A" * 88, "$7$101$AAAA$AAAA", "$7$0$AAAA$" + "A" * 88],
)
def test_what_is_not_a_7_hash_is_refused(text):
    with pytest.raises(ConfigError, match=r"is not a Mosquitto \$7\$ hash"):
        PasswordHash.parse(text)
