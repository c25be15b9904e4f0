"""The ``serve`` command's config file: TOML whose keys are the command's flags.

```toml
model = "/var/lib/edgekit/models/digits-1.0.0.edgebundle"
trust = ["/etc/edgekit/trusted"]

[server]
host = "0.0.0.0"
port = 8080
threads = 2

[telemetry]
fleet = "lab"
device = "pi-7"
state-dir = "/var/lib/edgekit"
telemetry-interval = 10

[mqtt]
url = "mqtts://broker.example:8883"
ca = "/etc/edgekit/ca.pem"
username = "pi-7"
password-file = "/etc/edgekit/mqtt.password"
```

A key is a flag's long name without the dashes (``state-dir`` or ``state_dir``); the tables only group them,
except ``[mqtt]``, whose keys are the ``--mqtt-*`` flags without that prefix (``url`` is ``--mqtt``). Flags
given on the command line win over the file (``--trust``, a list, adds to it); relative paths are relative
to the file's folder. Values are checked as the flags are, and an unknown key, a value of the wrong kind or
an unreadable file is a one-line error naming the key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgekit_runtime.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

#: tables that only group keys
GROUPS = ("server", "telemetry", "model")


def read(path: Path) -> dict[str, Any]:
    """The file's keys as flag destinations (``state_dir``, ``mqtt_ca``, ``mqtt``), not yet checked."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path} is not valid TOML ({exc}): fix the file") from None
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and key in (*GROUPS, "mqtt"):
            for inner, item in value.items():
                name = _dest(inner)
                flat["mqtt" if (key, name) == ("mqtt", "url") else f"mqtt_{name}" if key == "mqtt" else name] = item
        else:
            flat[_dest(key)] = value
    return flat


def _dest(key: str) -> str:
    return key.replace("-", "_")


def apply(parser: argparse.ArgumentParser, path: Path) -> None:
    """Make the file's values ``parser``'s defaults, checked as the flags would be."""
    actions = {a.dest: a for a in parser._actions if a.option_strings or a.dest == "model"}  # noqa: SLF001
    defaults: dict[str, Any] = {}
    for dest, value in read(path).items():
        action = actions.get(dest)
        if action is None or dest in ("help", "config"):
            known = ", ".join(sorted(k.replace("_", "-") for k in actions if k not in ("help", "config")))
            raise ConfigError(f"--config {path}: unknown key '{dest.replace('_', '-')}': use one of {known}")
        defaults[dest] = _value(path, action, value)
    parser.set_defaults(**defaults)


def _value(path: Path, action: argparse.Action, value: Any) -> Any:  # noqa: ANN401  (TOML values)
    flag = action.option_strings[-1] if action.option_strings else action.dest
    where = f"--config {path}: '{flag.lstrip('-')}'"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # noqa: SLF001
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is a switch: use true or false")
        return value if isinstance(action, argparse._StoreTrueAction) else not value  # noqa: SLF001
    many = action.nargs in ("+", "*")
    items = value if many and isinstance(value, list) else [value]
    if not many and isinstance(value, (list, dict)):
        raise ConfigError(f"{where} takes one value, not a {'list' if isinstance(value, list) else 'table'}")
    converted = []
    for item in items:
        if isinstance(item, (list, dict, bool)):
            raise ConfigError(f"{where} has a value of the wrong kind ({item!r})")
        text = str(item)
        try:
            result = action.type(text) if callable(action.type) else text
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if action.choices is not None and result not in action.choices:
            choices = ", ".join(str(c) for c in action.choices)
            raise ConfigError(f"{where} is '{text}': use one of {choices}")
        if isinstance(result, Path) and not result.is_absolute():
            result = Path(path).parent / result  # relative to the file, not to where the service starts
        converted.append(result)
    return converted if many else converted[0]
