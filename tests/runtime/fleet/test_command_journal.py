"""The command journal: nonces written down before a command runs, forgotten after it expires, kept on disk."""

from __future__ import annotations

import json

import pytest

from edgekit_runtime.errors import CommandError
from edgekit_runtime.fleet.command_journal import JOURNAL, CommandJournal


def test_a_nonce_is_taken_once_and_remembered_across_a_restart(tmp_path):
    journal = CommandJournal(tmp_path, clock=lambda: 100.0)
    assert journal.take("a" * 32, 90.0, keep_until=800.0)
    assert not journal.take("a" * 32, 90.0, keep_until=800.0)
    assert not CommandJournal(tmp_path, clock=lambda: 100.0).take("a" * 32, 90.0, keep_until=800.0)
    assert json.loads((tmp_path / JOURNAL).read_text())["nonces"] == {"a" * 32: 800.0}


def test_expired_nonces_are_forgotten(tmp_path):
    now = {"t": 100.0}
    journal = CommandJournal(tmp_path, clock=lambda: now["t"])
    journal.take("a" * 32, 90.0, keep_until=200.0)
    now["t"] = 300.0
    journal.take("b" * 32, 290.0, keep_until=1000.0)
    assert set(json.loads((tmp_path / JOURNAL).read_text())["nonces"]) == {"b" * 32}


@pytest.mark.parametrize(
    "text", ["{not json", '{"since": 0}', '{"since": "x", "nonces": {}}', '{"since": NaN, "nonces": {}}']
)
def test_a_damaged_journal_is_kept_aside_and_older_commands_are_refused(tmp_path, text, caplog):
    (tmp_path / JOURNAL).write_text(text)
    journal = CommandJournal(tmp_path, clock=lambda: 500.0)
    assert (tmp_path / f"{JOURNAL}.damaged").read_text() == text
    assert not journal.take("a" * 32, 499.0, keep_until=1200.0)  # may have run before the journal was lost
    assert journal.take("b" * 32, 501.0, keep_until=1200.0)
    assert "refused as possibly taken" in caplog.text


def test_a_full_journal_refuses_until_some_expire(tmp_path):
    journal = CommandJournal(tmp_path, clock=lambda: 100.0, max_entries=2)
    assert journal.take("a" * 32, 100.0, keep_until=200.0)
    assert journal.take("b" * 32, 100.0, keep_until=200.0)
    assert not journal.take("c" * 32, 100.0, keep_until=200.0)


def test_a_journal_that_cannot_be_written_refuses_the_command(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state folder should be")  # fails for root too
    with pytest.raises(CommandError, match="cannot be written"):
        CommandJournal(blocker, clock=lambda: 1.0).take("a" * 32, 1.0, keep_until=2.0)
