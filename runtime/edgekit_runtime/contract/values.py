"""The scalar types the messages are made of, with their bounds: said once, checked on decoding, in the schema."""

from typing import Annotated

from msgspec import Meta

#: a fleet or device name: one MQTT topic level (``re.fullmatch`` it: ``$`` lets a trailing newline through)
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
#: a SHA-256 digest as 64 lowercase hex digits
SHA256_PATTERN = r"^[0-9a-f]{64}$"
#: the largest integer both of the host's stores keep (SQLite INTEGER, PostgreSQL bigint)
MAX_INT = 2**63 - 1

Name = Annotated[str, Meta(pattern=NAME_PATTERN, description="A fleet or device name: one MQTT topic level.")]
Seconds = Annotated[float, Meta(ge=0, description="Unix time in seconds.")]
Count = Annotated[int, Meta(ge=0, le=MAX_INT)]
PositiveCount = Annotated[int, Meta(ge=1, le=MAX_INT)]
#: a telemetry window's sequence number (the device's outbox numbers them from 1, never reusing one)
Seq = Annotated[int, Meta(ge=1, le=MAX_INT)]
NonNegative = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
Text = Annotated[str, Meta(min_length=1)]
Sha256 = Annotated[str, Meta(pattern=SHA256_PATTERN)]
