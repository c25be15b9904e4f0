"""Mosquitto's passwords: new ones, and the ``$7$`` hashes its password file holds."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from edgekit.errors import ConfigError

#: PBKDF2 rounds: ``mosquitto_passwd``'s own (2.0). The passwords made here are 256 random bits, which no
#: number of rounds makes stronger or weaker; a password brought in by hand gets the same.
HASH_ITERATIONS = 101
#: salt bytes, as ``mosquitto_passwd`` 2.0 makes them (later brokers read 12 and 64)
SALT_BYTES = 12
#: SHA-512's digest size, the only one Mosquitto reads
DIGEST_BYTES = 64


def new_password() -> str:
    """256 random bits as 43 characters of ``A-Z a-z 0-9 - _`` (safe in a broker URL as they are)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class PasswordHash:
    """A Mosquitto 2 password hash: ``$7$ITERATIONS$SALT$DIGEST``, PBKDF2-HMAC-SHA512, both parts in base64.

    What ``mosquitto_passwd`` (2.0, ``-H sha512-pbkdf2``, its default) writes and every Mosquitto 2 reads.
    """

    iterations: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    @classmethod
    def of(cls, password: str, *, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> PasswordHash:
        """The hash of ``password``, with a new random salt unless one is given."""
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        return cls(iterations, salt, _pbkdf2(password, salt, iterations))

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Read ``$7$…`` (the part after ``user:`` in a password file)."""
        parts = text.split("$")
        salt = digest = b""
        if len(parts) == 5 and parts[:2] == ["", "7"] and parts[2].isdigit():  # noqa: PLR2004
            try:
                salt = base64.b64decode(parts[3], validate=True)
                digest = base64.b64decode(parts[4], validate=True)
            except binascii.Error:
                salt = b""
        if not salt or len(digest) != DIGEST_BYTES or int(parts[2]) < 1:
            raise ConfigError(f"'{text[:24]}…' is not a Mosquitto $7$ hash: give $7$ROUNDS$SALT$DIGEST, in base64")
        return cls(int(parts[2]), salt, digest)

    def matches(self, password: str) -> bool:
        """Whether ``password`` is the one hashed (compared in constant time)."""
        return hmac.compare_digest(self.digest, _pbkdf2(password, self.salt, self.iterations))

    def __str__(self) -> str:
        """As a password file holds it."""
        salt, digest = (base64.b64encode(part).decode() for part in (self.salt, self.digest))
        return f"$7${self.iterations}${salt}${digest}"


def _pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, DIGEST_BYTES)
