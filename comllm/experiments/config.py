"""The pipeline's configuration: one YAML file, validated (unknown keys and wrong types are errors).

The ``sft``, ``grpo``, ``improve`` and ``dqn`` sections are generated from the run configs of
their commands (:func:`stage_section`): every option of ``comllm sft``, ``comllm grpo``,
``comllm improve`` and ``comllm dqn train`` but the paths, the seed and what the pipeline decides is a key of the
same name, type, constraint and default (the pipeline's own defaults: ``sft.template``,
``grpo.steps``, ``dqn.steps``), passed to the command under the command's flag when it
differs from the command's default (:func:`section_flags`). The ``eval`` section's
``slots``, ``warmup`` and ``seeds`` are ``comllm simulate``'s. ``args`` lists still pass
extra flags unchanged (e.g. ``["--lr", "2e-3"]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from comllm.drl.config import TrainOptions
from comllm.errors import ComllmError, format_validation_error
from comllm.evaluate.config import SimulateConfig
from comllm.grpo.config import GRPORunConfig
from comllm.lacs.improve import ImproveConfig as ImproveRunConfig
from comllm.run_config import _MISSING, command_flags, config_fields
from comllm.sft_config import SFTConfig as SFTRunConfig


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
    sft_sets: list[str] = Field(
        default_factory=list,
        description="one SFT file of sft_n records per entry, each under these scenario overrides"
        " ('arrival_prob=0.5;decisions=sequential'); empty: one file at the scenario's own settings",
    )
    grpo_n: int = Field(2_000, ge=1)
    grpo_servers: str = "3-7"
    grpo_set: list[str] = Field(default_factory=lambda: ["arrival_prob=0.5"], description="scenario overrides")
    test_n: int = Field(2_000, ge=1)
    test_servers: list[int] = Field(default_factory=lambda: [6, 11, 16])
    args: list[str] = Field(default_factory=list)


def stage_section(name: str, run: type[BaseModel], set_by_pipeline: tuple[str, ...], defaults: dict[str, Any],
                  doc: str, **own: Any) -> type[_Section]:
    """A stage's config section generated from the run config of its command: every field of
    ``run`` except ``set_by_pipeline`` (data paths, output folder, seed, resume) is a key, with
    the field's type, constraints and help, and its default, or the pipeline's in ``defaults``;
    ``own`` adds the section's own keys (``(type, Field)``)."""
    fields: dict[str, Any] = {}
    for key, info in _field_infos(run).items():
        if key in set_by_pipeline:
            continue
        if key in defaults:
            info = FieldInfo.merge_field_infos(info, default=defaults[key])
        fields[key] = (info.annotation, info)
    fields.update(own)
    section = create_model(name, __base__=_Section, __doc__=doc, **fields)
    section.run_config = run  # type: ignore[attr-defined]
    section.pipeline_defaults = dict(defaults)  # type: ignore[attr-defined]
    return section


def _field_infos(run: type) -> dict[str, FieldInfo]:
    """A pydantic model's fields, or a dataclass's as pydantic fields (type, default, help)."""
    if isinstance(run, type) and issubclass(run, BaseModel):
        return dict(run.model_fields)
    out = {}
    for f in config_fields(run):
        default = ... if f.default is _MISSING else (list(f.default) if isinstance(f.default, tuple) else f.default)
        annotation = list[str] if f.default == () or isinstance(f.default, tuple) else f.kind
        info = FieldInfo.from_annotated_attribute(annotation, Field(default, description=f.help))
        out[f.name] = info
    return out


#: keys of the grpo section that only the comllm stage (``--lacs sim``) passes
LACS_KEYS = ("lacs_weight", "horizon", "rollouts", "other_policy", "drop_cost", "n_future")


def section_flags(section: BaseModel, skip: tuple[str, ...] = (), always: tuple[str, ...] = ()) -> list[str]:
    """The flags that pass a stage section's keys to its command (under the command's own names):
    those whose value is not the command's default, and ``always``."""
    run = type(section).run_config  # type: ignore[attr-defined]
    names = {f.name for f in config_fields(run)}
    keys = [k for k in type(section).model_fields if k in names and k not in skip]
    try:
        return command_flags(run, section, keys, always)
    except ValueError as err:
        raise ConfigError(f"config key {err}") from None


_ARGS = (list[str], Field(default_factory=list, description="extra flags passed to the command unchanged"))
_ENABLED = (bool, Field(True, description="run this stage"))

#: ``sft``: every option of ``comllm sft`` (:class:`comllm.sft_config.SFTConfig`) but the paths and the seed
SFTConfig = stage_section(
    "SFTConfig", SFTRunConfig, ("data", "out", "seed", "resume"), {"template": "annotated-compact"},
    "The ``sft`` stage: ``comllm sft``'s options (defaults: the command's; template: annotated-compact).",
    args=_ARGS,
)  # fmt: skip

#: ``grpo`` and ``comllm``: every option of ``comllm grpo`` (:class:`comllm.grpo.config.GRPORunConfig`)
#: but the model (the sft stage's), the paths, the seed and ``lacs`` (off for ``grpo``, sim for ``comllm``)
GRPOConfig = stage_section(
    "GRPOConfig", GRPORunConfig, ("model", "data", "out", "seed", "resume", "lacs"), {"steps": 200},
    "GRPO without LACS (the ablation) and with it (COMLLM): same settings but ``--lacs``.",
    enabled=_ENABLED, args=_ARGS,
    method=(str, Field("trl", pattern="^(trl|all-actions)$", description="what the grpo stage runs: trl (TRL's"
            " sampled GRPO, --lacs off) | all-actions (comllm improve with the improve section's keys and no"
            " look-ahead, --lam 0 --horizon 0: the all-action form, for models that decide by their cost head)")),
)  # fmt: skip

#: ``improve``: every option of ``comllm improve`` (:class:`comllm.lacs.improve.ImproveConfig`, the
#: all-action LACS stage) but the model (the sft stage's), the folder and the seed; ``method``
#: picks what the ``comllm`` stage runs: ``all-actions`` (``comllm improve``, the default) or
#: ``grpo`` (TRL's sampled GRPO with the LACS reward, ``comllm grpo --lacs sim``, the paper's recipe)
ImproveSection = stage_section(
    "ImproveSection", ImproveRunConfig, ("model", "out", "seed", "resume"), {},
    "The ``comllm`` stage: all-action LACS improvement of the SFT model (or TRL GRPO + LACS, ``method: grpo``).",
    method=(str, Field("all-actions", pattern="^(all-actions|grpo)$", description="all-actions | grpo")), args=_ARGS,
)  # fmt: skip

#: ``dqn``: every option of ``comllm dqn train`` (:class:`comllm.drl.config.TrainOptions`) but the
#: algorithm and scenario (one run per ``algos`` x ``eval.scenarios``), the folder and the seed
DQNConfig = stage_section(
    "DQNConfig", TrainOptions, ("algo", "scenario", "out", "seed", "resume"), {"steps": 60_000},
    "DRL baselines, one agent per algorithm and evaluation scenario (they cannot change N).",
    enabled=_ENABLED, algos=(list[str], Field(default_factory=lambda: ["dqn"], description="algorithms trained")), args=_ARGS,
)  # fmt: skip

_SIM = SimulateConfig.model_fields


class EvalConfig(_Section):
    """Closed- and open-loop evaluation; ``slots``, ``warmup`` and ``seeds`` are ``comllm simulate``'s."""

    scenarios: list[str] = Field(default_factory=lambda: ["paper-6", "paper-11"])
    heavy_prob: float | None = Field(0.5, ge=0, le=1, description="second closed-loop table at this load")
    baselines: list[str] = Field(
        default_factory=lambda: ["greedy", "random", "local", "round-robin", "least-loaded", "lacs-planner"]
    )
    slots: int = _SIM["slots"]
    warmup: int = _SIM["warmup"]
    seeds: int = _SIM["seeds"]
    loads: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    load_slots: int = Field(1_000, ge=1)
    load_policies: list[str] | None = Field(None, description="policies of the load sweep (default: all but slow planners)")
    server_counts: list[int] = Field(default_factory=lambda: list(range(3, 17)))
    zero_shot_n: int = Field(500, ge=1, description="open-loop records per server count")
    perturbations: list[str] = Field(
        default_factory=lambda: ["none", "shuffle-fields", "paraphrase", "units", "numbers", "shuffle-servers"]
    )
    robustness_n: int = Field(500, ge=1)
    oracle: Literal["paper", "incoming", "sharing"] = Field(
        "paper",
        description="one-step oracle of the open-loop metrics (accuracy, perf ratio): paper (the paper's formula) |"
        " incoming (the fresh view's, greedy:incoming) | sharing (greedy:sharing's, the lean-sharing template's)",
    )
    lm_options: dict[Literal["sft", "grpo", "comllm"], str] = Field(
        default_factory=dict,
        description="options appended to a stage's llm policy spec, e.g. {comllm: 'cost_temperature=0.03'}",
    )
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
    improve: ImproveSection = ImproveSection()  # type: ignore[valid-type]
    dqn: DQNConfig = DQNConfig()
    eval: EvalConfig = EvalConfig()
    launcher: LauncherConfig = LauncherConfig()


STAGES = ("data", "sft", "grpo", "comllm", "dqn", "eval", "report")


class PipelineOptions(BaseModel):
    """Every option of ``comllm pipeline`` (the command is generated from it): the config file and
    what overrides its keys (``run_dir``; ``stage`` picks among ``stages``; ``--set`` any key)."""

    model_config = ConfigDict(extra="forbid")

    config: str = Field(
        ..., description="pipeline YAML (configs/paper.yaml, configs/tiny.yaml)", json_schema_extra={"flag": "--config"}
    )
    stage: list[str] = Field(default_factory=list, description="run only these stages", json_schema_extra={"flag": "--stage"})
    force: bool = Field(False, description="rerun stages that are done already", json_schema_extra={"flag": "--force/--no-force"})
    run_dir: str | None = Field(None, description="override the config's run_dir", json_schema_extra={"flag": "--run-dir"})
    overrides: list[str] = Field(
        default_factory=list, description="config override key=value, e.g. sft.steps=100", json_schema_extra={"flag": "--set"}
    )


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
