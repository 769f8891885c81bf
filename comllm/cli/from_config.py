"""Commands generated from a run's config: one definition gives the options, their defaults,
their help and their validation.

A config is a dataclass (validated by its ``__post_init__``, e.g.
:class:`comllm.lacs.improve.ImproveConfig`) or a pydantic model (validated by its
fields' constraints, e.g. :class:`comllm.grpo.config.GRPORunConfig`). Each field becomes
``--field-name``, or the names in the ``flag`` of its metadata (a dataclass field's
``metadata``, a pydantic field's ``json_schema_extra``), e.g. ``"--4bit"``,
``("--num-generations", "-G")`` or ``"--bf16/--no-bf16"``, with the field's default and
its help (``help`` of the metadata, or the pydantic ``description``). Types on the
command line: a ``bool`` is a flag; a ``tuple[str, ...]`` or ``list[str]`` a repeatable
option; ``X | None`` an option that may be left out; a ``Literal`` of names, or a union
of a number and names, is read as text and checked by the config itself, so every bad
value gets the config's one-line error naming the option.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable, Literal, Optional

import typer

from comllm.run_config import _MISSING, ConfigField, config_fields, option_names  # noqa: F401 (re-exported)


def _cli_type(kind: Any) -> Any:
    """The type typer parses for a config field of type ``kind``."""
    origin = typing.get_origin(kind)
    if origin is Literal:
        return str
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        inner = _cli_type(args[0]) if len(args) == 1 else str  # e.g. float | Literal["deadline"]: text
        return Optional[inner] if len(args) < len(typing.get_args(kind)) else inner
    if origin in (list, tuple):
        return Optional[list[str]] if typing.get_args(kind)[0] is str else Optional[list[typing.get_args(kind)[0]]]
    return kind


def config_options(cls: type) -> list[inspect.Parameter]:
    """The typer parameters of every field of ``cls``."""
    params = []
    for f in config_fields(cls):
        kind = _cli_type(f.kind)
        default = ... if f.default is _MISSING else f.default
        help_ = f.help
        if typing.get_origin(f.kind) in (list, tuple):
            help_ += " (repeatable)"
            default = ... if default is ... else (list(default) or None)
        option = typer.Option(default, *f.flags, help=help_)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    return params


def config_command(
    app: typer.Typer,
    name: str,
    cls: type,
    run: Callable[[Any], None],
    help: str,
    make: Callable[..., Any] | None = None,
) -> None:
    """Register ``name`` on ``app``: its options are ``cls``'s fields; it calls ``run(make(**options))``.

    ``make`` (default ``cls``) builds the config from the options: the place for checks
    that come before the config's own (input files, output folders).
    """
    fields = config_fields(cls)

    def command(**kwargs: Any) -> None:
        for f in fields:
            origin = typing.get_origin(f.kind)
            if origin is tuple:
                kwargs[f.name] = tuple(kwargs.get(f.name) or ())
            elif origin is list and kwargs.get(f.name) is None and f.default is not _MISSING:
                kwargs[f.name] = list(f.default)
        run((make or cls)(**kwargs))

    command.__signature__ = inspect.Signature(config_options(cls))  # type: ignore[attr-defined]
    command.__doc__ = help
    command.__name__ = name.replace("-", "_")
    app.command(name, help=help)(command)
