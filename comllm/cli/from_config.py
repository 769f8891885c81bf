"""Commands generated from a run's config dataclass: one definition gives the options, their
defaults, their help and their validation (the dataclass's ``__post_init__``).

Each field becomes ``--field-name`` (or the ``flag`` of its metadata) with the field's
default and the ``help`` of its metadata; a ``bool`` becomes a flag, a ``tuple[str, ...]``
a repeatable option.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, Callable

import typer


def config_options(cls: type) -> list[inspect.Parameter]:
    """The typer parameters of every field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        if typing.get_origin(kind) is tuple:
            option = typer.Option(list(default) or None, flag, help=help_ + " (repeatable)")
            kind = typing.Optional[list[str]]
        elif kind is bool:
            option = typer.Option(default, flag, help=help_)
        else:
            option = typer.Option(default, flag, help=help_)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    return params


def config_command(app: typer.Typer, name: str, cls: type, run: Callable[[Any], None], help: str) -> None:
    """Register ``name`` on ``app``: its options are ``cls``'s fields; it calls ``run(cls(**options))``."""
    hints = typing.get_type_hints(cls)

    def command(**kwargs: Any) -> None:
        for key, kind in hints.items():
            if typing.get_origin(kind) is tuple:
                kwargs[key] = tuple(kwargs.get(key) or ())
        run(cls(**kwargs))

    command.__signature__ = inspect.Signature(config_options(cls))  # type: ignore[attr-defined]
    command.__doc__ = help
    command.__name__ = name.replace("-", "_")
    app.command(name, help=help)(command)
