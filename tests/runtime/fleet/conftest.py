"""The fleet agent's tests share the fleet owner's key and an agent that takes only commands signed with it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit_runtime.fleet.command_journal import CommandJournal
from edgekit_runtime.fleet.signed_command import CommandGate
from edgekit_runtime.signing import TrustedKey, key_id


@pytest.fixture
def owner() -> Ed25519PrivateKey:
    """The fleet owner's private key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def gated(tmp_path, owner):
    """(agent, publisher, deployer): an agent with stand-ins whose gate trusts ``owner`` only."""
    from tests.runtime.fleet.test_agent import agent_with

    public = owner.public_key()
    gate = CommandGate([TrustedKey(key_id(public), public, "test")], fleet="lab", journal=CommandJournal(tmp_path))
    return agent_with(gate=gate)
