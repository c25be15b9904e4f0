"""Every message host and device share, defined once as ``msgspec`` Structs (issue 18).

The device builds what it sends from these types and the host reads against them; the host builds the commands it
sends from them and the device decodes them with their types and bounds. The docs' JSON Schemas
(``docs/telemetry.schema.json``, ``docs/commands.schema.json``) are generated from them by :mod:`.schema`, and a
test fails when a committed file differs (``python tools/gen_schema.py`` writes them again).

- :mod:`.values`: the scalar types every message uses (names, Unix seconds, counts, hashes), with their bounds;
- :mod:`.statuses`: a command's steps (:class:`~.statuses.Phase`, ``done``) and which of them end it;
- :mod:`.telemetry`: a window of numbers (``edgekit.telemetry/1``) and a batch of them;
- :mod:`.settings`: the settings ``set-config`` changes, with their ranges;
- :mod:`.state`: a device's retained state (``edgekit.state/1``);
- :mod:`.events`: one step of a command on a device (``edgekit.event/1``);
- :mod:`.commands`: the commands a device runs, and the signed envelope they travel in.

Encoding a Struct never checks its bounds (the device is not slowed, and never loses a window to its own
rounding); decoding one does, and so does the schema.
"""
