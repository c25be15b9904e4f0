"""The fleet broker's ACL, line by line.

A real broker applying it is tests/integration/test_broker_acl.py.
"""

from __future__ import annotations

from edgekit.fleet.broker_accounts import Device, FleetAccounts, acl_text


def test_the_acl_line_by_line():
    accounts = FleetAccounts("lab", devices=(Device("pi-1", ("cams", "lobby")), Device("pi-2")))
    rules = [line for line in acl_text(accounts).splitlines() if line and not line.startswith("#")]
    assert rules == [
        "pattern write edgekit/lab/%u/telemetry",
        "pattern write edgekit/lab/%u/state",
        "pattern write edgekit/lab/%u/events",
        "pattern read edgekit/lab/%u/cmd",
        "user pi-1",
        "topic read edgekit/lab/@all/cmd",
        "topic read edgekit/lab/@cams/cmd",
        "topic read edgekit/lab/@lobby/cmd",
        "topic read edgekit/lab/@bundles/#",
        "user pi-2",
        "topic read edgekit/lab/@all/cmd",
        "topic read edgekit/lab/@bundles/#",
        "user operator",
        "topic deny edgekit/lab/operator/#",
        "topic write edgekit/lab/+/cmd",
        "topic write edgekit/lab/@bundles/#",
        "topic read edgekit/lab/+/state",
        "topic read edgekit/lab/+/events",
        "user collector",
        "topic deny edgekit/lab/collector/#",
        "topic write edgekit/lab/+/cmd",
        "topic read edgekit/lab/+/telemetry",
        "topic read edgekit/lab/+/state",
        "topic read edgekit/lab/+/events",
    ]
