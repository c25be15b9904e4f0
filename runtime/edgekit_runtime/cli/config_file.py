"""``serve --config FILE``: TOML whose keys are the command's flags, fed to click as the flags' defaults.

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
given on the command line win over the file (``--trust`` and ``--group``, lists, add to it); relative paths
are relative to the file's folder. Values are checked as the flags are (by the flags' own click types), and an
unknown key, a value of the wrong kind or an unreadable file is a one-line error naming the key.

The checked values become the command's ``default_map``: click then takes a flag from the command line, else
from the file, else its default.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from edgekit_runtime.cli.params import PATH
from edgekit_runtime.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from collections.abc import Callable

#: tables that only group keys
GROUPS = ("server", "telemetry", "model")
#: parameters that are not keys
NOT_KEYS = ("help", "config")


def read(path: Path) -> dict[str, Any]:
    """The file's keys as parameter names (``state_dir``, ``mqtt_ca``, ``mqtt``), not yet checked."""
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
                name = _name(inner)
                flat["mqtt" if (key, name) == ("mqtt", "url") else f"mqtt_{name}" if key == "mqtt" else name] = item
        else:
            flat[_name(key)] = value
    return flat


def _name(key: str) -> str:
    return key.replace("-", "_")


def defaults(command: click.Command, path: Path) -> dict[str, Any]:
    """The file's values for ``command``'s parameters, checked as the flags would be."""
    params = {p.name: p for p in command.params if p.name and p.name not in NOT_KEYS}
    found: dict[str, Any] = {}
    for name, value in read(path).items():
        param = params.get(name)
        if param is None:
            known = ", ".join(sorted(k.replace("_", "-") for k in params))
            raise ConfigError(f"--config {path}: unknown key '{name.replace('_', '-')}': use one of {known}")
        found[name] = _value(path, param, value)
    return found


def _value(path: Path, param: click.Parameter, value: Any) -> Any:  # noqa: ANN401  (TOML values)
    flag = max(param.opts, key=len) if isinstance(param, click.Option) else str(param.name)
    where = f"--config {path}: '{flag.lstrip('-')}'"
    if isinstance(param, click.Option) and param.is_flag:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is a switch: use true or false")
        return value
    many = param.multiple
    items = value if many and isinstance(value, list) else [value]
    if not many and isinstance(value, (list, dict)):
        raise ConfigError(f"{where} takes one value, not a {'list' if isinstance(value, list) else 'table'}")
    converted = []
    for item in items:
        if isinstance(item, (list, dict, bool)):
            raise ConfigError(f"{where} has a value of the wrong kind ({item!r})")
        text = str(item)
        if isinstance(param.type, click.Choice) and text not in param.type.choices:
            raise ConfigError(f"{where} is '{text}': use one of {', '.join(map(str, param.type.choices))}")
        try:
            result = param.type.convert(text, param, None)
        except click.BadParameter as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
        if isinstance(result, Path) and not result.is_absolute():
            result = Path(path).parent / result  # relative to the file, not to where the service starts
        converted.append(result)
    return converted if many else converted[0]


def _load(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.default_map = {**(ctx.default_map or {}), **defaults(ctx.command, value)}


def option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--config FILE``: read first, so that the file's values are there when the other flags are taken."""
    return click.option(
        "--config",
        type=PATH,
        metavar="FILE",
        is_eager=True,
        expose_value=False,
        callback=_load,
        help="a TOML file of these flags; flags given here win over it",
    )


def added(ctx: click.Context, param: click.Parameter, value: Any) -> list[Any]:  # noqa: ANN401
    """A repeatable flag's values as a list; given on the command line, they add to the config file's."""
    given = list(value or ())
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        return [*(ctx.default_map or {}).get(param.name, ()), *given]
    return given
