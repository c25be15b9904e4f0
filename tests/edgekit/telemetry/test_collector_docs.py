"""docs/telemetry.md's Collector section: its SQL runs on both stores, and its flags exist."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.telemetry.messages import parse_message
from edgekit.telemetry.store import open_store
from tests.edgekit.telemetry.sample import encode, topic, window

DOC = Path(__file__).resolve().parents[3] / "docs" / "telemetry.md"


def section() -> str:
    text = DOC.read_text(encoding="utf-8")
    assert "\n## Collector\n" in text
    return text.split("\n## Collector\n", 1)[1]


def test_the_sql_runs_on_both_stores(store_url):
    queries = re.findall(r"```sql\n(.*?)```", section(), flags=re.DOTALL)
    assert queries
    hot = window(1, system={"temperature_c": 48.5})
    with open_store(store_url) as store:
        store.add_windows(list(parse_message(topic(), encode(hot), received=0.0).windows))
    for query in queries:
        if store_url.startswith("sqlite"):
            with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
                found = db.execute(query).fetchall()
        else:
            import psycopg

            with psycopg.connect(store_url) as db:
                found = db.execute(query).fetchall()
        assert [tuple(str(v) for v in row) for row in found] == [("pi-7", "1", "5.0", "48.5")]


def test_every_flag_it_names_exists():
    helps = "".join(CliRunner().invoke(app, ["telemetry", cmd, "--help"]).stdout for cmd in ("collect", "show"))
    named = set(re.findall(r"`(--[a-z-]+)", section()))
    assert named
    assert {flag for flag in named if flag not in helps} == set()
