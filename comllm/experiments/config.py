"""The pipeline's configuration: one YAML file, validated (unknown keys and wrong types are errors).

Every stage's options live here; ``args`` lists pass extra flags to the stage's
command unchanged (e.g. ``["--lr", "2e-3"]``), so anything the commands accept
can be set without a new config key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from comllm.errors import ComllmError, format_validation_error
from comllm.lacs.lookahead import LACS_DEFAULTS


class ConfigError(ComllmError, ValueError):
    """A broken pipeline config: the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(_Section):
    """Data sets (``comllm data``); server counts as ``6``, ``3-7`` or ``2,4,6``."""

    scenario: str = "paper-6"
    template: str = "paper"
    sft_n: int = Field(50_000, ge=1)
    sft_servers: str = "2-16"
    grpo_n: int = Field(2_000, ge=1)
    grpo_servers: str = "3-7"
    grpo_set: list[str] = Field(default_factory=lambda: ["arrival_prob=0.5"], description="scenario overrides")
    test_n: int = Field(2_000, ge=1)
    test_servers: list[int] = Field(default_factory=lambda: [6, 11, 16])
    args: list[str] = Field(default_factory=list)


class SFTConfig(_Section):
    model: str = "default"
    template: str = "annotated-compact"
    steps: int | None = Field(None, ge=1)
    args: list[str] = Field(default_factory=list)


class GRPOConfig(_Section):
    """GRPO without LACS (the ablation) and with it (COMLLM): same settings but ``--lacs``."""

    enabled: bool = True
    steps: int = Field(200, ge=1)
    lacs_weight: float = Field(LACS_DEFAULTS.lam, ge=0)
    horizon: int = Field(LACS_DEFAULTS.horizon, ge=1)
    rollouts: int = Field(LACS_DEFAULTS.rollouts, ge=1)
    args: list[str] = Field(default_factory=list)


class DQNConfig(_Section):
    """DRL baselines, one agent per algorithm and evaluation scenario (they cannot change N)."""

    enabled: bool = True
    algos: list[str] = Field(default_factory=lambda: ["dqn"])
    steps: int = Field(60_000, ge=1)
    args: list[str] = Field(default_factory=list)


class EvalConfig(_Section):
    scenarios: list[str] = Field(default_factory=lambda: ["paper-6", "paper-11"])
    heavy_prob: float | None = Field(0.5, ge=0, le=1, description="second closed-loop table at this load")
    baselines: list[str] = Field(
        default_factory=lambda: ["greedy", "random", "local", "round-robin", "least-loaded", "lacs-planner"]
    )
    slots: int = Field(2_000, ge=1)
    warmup: int = Field(200, ge=0)
    seeds: int = Field(3, ge=1)
    loads: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    load_slots: int = Field(1_000, ge=1)
    load_policies: list[str] | None = Field(None, description="policies of the load sweep (default: all but slow planners)")
    server_counts: list[int] = Field(default_factory=lambda: list(range(3, 17)))
    zero_shot_n: int = Field(500, ge=1, description="open-loop records per server count")
    perturbations: list[str] = Field(
        default_factory=lambda: ["none", "shuffle-fields", "paraphrase", "units", "numbers", "shuffle-servers"]
    )
    robustness_n: int = Field(500, ge=1)
    workers: int = Field(2, ge=1)
    ray: str | None = None


class LauncherConfig(_Section):
    """How training commands start: plainly, or under ``accelerate launch`` (multi-GPU, DeepSpeed)."""

    accelerate: bool = False
    config_file: str | None = None
    num_processes: int | None = Field(None, ge=1)


class PipelineConfig(_Section):
    name: str = "comllm"
    run_dir: str = "runs/paper"
    seed: int = 0
    stages: list[str] = Field(
        default_factory=lambda: ["data", "sft", "grpo", "comllm", "dqn", "eval", "report"],
        description="stages to run, in order",
    )
    data: DataConfig = DataConfig()
    sft: SFTConfig = SFTConfig()
    grpo: GRPOConfig = GRPOConfig()
    dqn: DQNConfig = DQNConfig()
    eval: EvalConfig = EvalConfig()
    launcher: LauncherConfig = LauncherConfig()


STAGES = ("data", "sft", "grpo", "comllm", "dqn", "eval", "report")


def _message(err: ValidationError) -> str:
    return format_validation_error(err, "config", "key")


def apply_overrides(raw: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """``["sft.steps=100", "eval.seeds=1"]`` (YAML values, dotted keys) applied to a raw config dict."""
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key '{key}' does not name a section")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            node[parts[-1]] = value
    return raw


def load_config(
    path: str | Path, overrides: dict[str, Any] | None = None, set_items: list[str] | None = None
) -> PipelineConfig:
    """Read and validate a YAML pipeline config (plus ``key=value`` overrides); errors name the key."""
    from comllm.outputs import input_problem

    path = Path(path)
    problem = input_problem(path)
    if problem:
        raise ConfigError(f"config file '{path}' {problem}")
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must be a mapping of keys to values")
    raw.update(overrides or {})
    apply_overrides(raw, set_items or [])
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_message(err)) from None
    bad = [s for s in cfg.stages if s not in STAGES]
    if bad:
        raise ConfigError(f"config key 'stages' names unknown stage '{bad[0]}' (known: {', '.join(STAGES)})")
    return cfg
