"""Options of a closed-loop evaluation (``comllm simulate``): one validated pydantic model from
which the command's options come (:func:`comllm.cli.from_config.config_command`); the
pipeline's ``eval`` section takes its defaults for ``slots``, ``warmup`` and ``seeds`` from it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from comllm.errors import ComllmError, format_validation_error


class SimulateError(ComllmError, ValueError):
    """A bad ``comllm simulate`` option (names the option and the value)."""


class SimulateConfig(BaseModel):
    """Every option of ``comllm simulate``."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field("paper-6", description="preset name or YAML file")
    policy: list[str] = Field(
        default_factory=lambda: ["greedy"], description="policy NAME[:ARG] ({n}: the scenario's server count)"
    )
    slots: int = Field(2000, ge=1, description="scored slots per seed")
    seeds: int = Field(3, ge=1, description="number of seeds (first_seed..first_seed+seeds-1)")
    first_seed: int = Field(
        0, ge=0, description="first seed: choose settings on seeds the reported tables (0..) do not use, e.g. 100"
    )
    warmup: int = Field(200, ge=0, description="unscored slots before scoring")
    overrides: list[str] = Field(
        default_factory=list, description="scenario override key=value, e.g. arrival_prob=0.5", json_schema_extra={"flag": "--set"}
    )
    json_out: str | None = Field(None, description="write the results as JSON", json_schema_extra={"flag": "--json"})
    markdown: str | None = Field(None, description="write the table as Markdown", json_schema_extra={"flag": "--markdown"})


def make_simulate_config(**kwargs: Any) -> SimulateConfig:
    """Validate ``comllm simulate``'s options; errors name the option and the value."""
    try:
        return SimulateConfig(**kwargs)
    except ValidationError as err:
        raise SimulateError(format_validation_error(err, "simulate", "option", unknown_noun="option")) from None
