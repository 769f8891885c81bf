"""The fields of a run config (a dataclass or a pydantic model) with their command-line names.

Read by :mod:`comllm.cli.from_config`, which builds each run's command from its config, and by
the pipeline (:mod:`comllm.experiments.config`), which passes a stage's keys to that command
under the same names. A field's names are ``--field-name``, or the ``flag`` of its metadata
(a dataclass field's ``metadata``, a pydantic field's ``json_schema_extra``).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

#: the default of a required field
_MISSING: Any = type("Required", (), {"__repr__": lambda self: "<required>"})()


def _is_pydantic(cls: type) -> bool:
    return hasattr(cls, "model_fields")


@dataclasses.dataclass(frozen=True)
class ConfigField:
    """One field of a run config as the command line sees it."""

    name: str
    kind: Any  # the config's type
    default: Any  # _MISSING: required
    flags: tuple[str, ...]
    help: str


def config_fields(cls: type) -> list[ConfigField]:
    """The fields of the dataclass or pydantic model ``cls``, with their option names."""
    out = []
    if _is_pydantic(cls):
        for name, f in cls.model_fields.items():  # type: ignore[attr-defined]
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            if f.is_required():
                default: Any = _MISSING
            else:
                default = f.get_default(call_default_factory=True)
            out.append(ConfigField(name, f.annotation, default, _flags(name, extra.get("flag")), f.description or ""))
        return out
    hints = typing.get_type_hints(cls)
    for fd in dataclasses.fields(cls):
        if fd.default is not dataclasses.MISSING:
            default = fd.default
        elif fd.default_factory is not dataclasses.MISSING:
            default = fd.default_factory()
        else:
            default = _MISSING
        flag = fd.metadata.get("flag")
        out.append(ConfigField(fd.name, hints[fd.name], default, _flags(fd.name, flag), fd.metadata.get("help", "")))
    return out


def _flags(name: str, flag: Any) -> tuple[str, ...]:
    if not flag:
        return ("--" + name.replace("_", "-"),)
    return (flag,) if isinstance(flag, str) else tuple(flag)


def option_names(f: ConfigField) -> list[str]:
    """Every name the option of ``f`` answers to (``--bf16/--no-bf16`` gives both)."""
    return [n for flag in f.flags for n in flag.split("/")]


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def command_flags(cls: type, values: Any, keys: typing.Iterable[str], always: typing.Iterable[str] = ()) -> list[str]:
    """The flags that give the command of run config ``cls`` the ``keys`` of ``values``.

    A key whose value is the command's default is left out unless it is in ``always``; a
    ``bool`` is its flag (``--lora``) or its negative flag (``--no-progress``); a list
    repeats the flag per item; ``None`` is left out.
    """
    keys, always = set(keys), set(always)
    out: list[str] = []
    for f in config_fields(cls):
        if f.name not in keys:
            continue
        value = getattr(values, f.name)
        if value is None or (f.name not in always and value == f.default):
            continue
        names = option_names(f)
        if isinstance(value, bool):
            negative = [n for n in names if n.startswith("--no-")]
            if not value and not negative:
                raise ValueError(f"'{f.name}' = false has no flag (its option is {names[0]})")
            out.append(names[0] if value else negative[0])
        elif isinstance(value, (list, tuple)):
            for item in value:
                out += [names[0], _text(item)]
        else:
            out += [names[0], _text(value)]
    return out
