"""Typed configurations of the DRL trainings and the checkpoint metadata file.

A checkpoint folder holds ``config.json`` (:class:`CheckpointMeta`): the
algorithm, the full scenario it was trained on (so its server count), the
observation scale, the training configuration and the training progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from comllm.errors import ComllmError, format_validation_error

ALGOS = ("dqn", "d3qn-lstm")
META_FILE = "config.json"
META_FORMAT = "comllm-drl/1"


class DRLError(ComllmError, ValueError):
    """A bad training option or an unusable checkpoint (the message names it)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DQNConfig(_Strict):
    """Stable-Baselines3 DQN (a plain DQN with a target network, MLP Q-network).

    ``exploration_fraction`` is the fraction of all training steps over which
    epsilon falls linearly from its initial to its final value; rewards (slots,
    negative) are multiplied by ``reward_scale`` before they reach the loss.
    """

    learning_rate: float = Field(default=5e-4, gt=0)
    gamma: float = Field(default=0.9, ge=0, le=1)
    buffer_size: int = Field(default=100_000, ge=1000)
    batch_size: int = Field(default=64, ge=1)
    learning_starts: int = Field(default=2_000, ge=200, description="steps before the first update")
    train_freq: int = Field(default=4, ge=1, description="env steps per update")
    gradient_steps: int = Field(default=1, ge=1)
    target_update_interval: int = Field(default=2_000, ge=1, description="env steps")
    exploration_fraction: float = Field(default=0.2, gt=0, le=1)
    exploration_initial_eps: float = Field(default=1.0, ge=0, le=1)
    exploration_final_eps: float = Field(default=0.02, ge=0, le=1)
    net_arch: list[int] = Field(default_factory=lambda: [128, 128])
    max_grad_norm: float = Field(default=10.0, gt=0)
    reward_scale: float = Field(default=0.1, gt=0)


class D3QNConfig(_Strict):
    """Tang & Wong's dueling double DQN with an LSTM over the load history.

    Defaults are Tang & Wong's (docs/model.md §9) and their reference code: lr 0.01 (RMSprop),
    gamma 0.9, target network copied every 200 updates, replay of 500
    transitions, batch 32, 20 LSTM units and two hidden layers of 20, MSE loss.
    Epsilon falls linearly from ``eps_start`` to ``eps_end`` over
    ``exploration_fraction`` of the training steps.
    """

    learning_rate: float = Field(default=0.01, gt=0)
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    gamma: float = Field(default=0.9, ge=0, le=1)
    target_update: int = Field(default=200, ge=1, description="updates between target copies")
    buffer_size: int = Field(default=500, ge=100)
    batch_size: int = Field(default=32, ge=1)
    hidden: int = Field(default=20, ge=1, description="units of each of the two hidden layers")
    lstm_hidden: int = Field(default=20, ge=1, description="LSTM units")
    learning_starts: int = Field(default=500, ge=200, description="steps before the first update")
    train_freq: int = Field(default=1, ge=1, description="env steps per update")
    eps_start: float = Field(default=1.0, ge=0, le=1)
    eps_end: float = Field(default=0.01, ge=0, le=1)
    exploration_fraction: float = Field(default=0.2, gt=0, le=1)
    max_grad_norm: float = Field(default=10.0, gt=0)
    reward_scale: float = Field(default=0.1, gt=0)


HYPER_MODELS: dict[str, type[_Strict]] = {"dqn": DQNConfig, "d3qn-lstm": D3QNConfig}


#: steps of a training when neither --steps nor a resumed run gives them
DEFAULT_STEPS = 200_000


class _Schedule(_Strict):
    """The options a training run and ``comllm dqn train`` share (one definition for both)."""

    seed: int = Field(default=0, description="random seed")
    episode_slots: int = Field(default=200, ge=1, description="slots per training episode")
    eval_every: int = Field(default=20_000, ge=1, description="steps between closed-loop evaluations")
    eval_slots: int = Field(default=500, ge=1, description="scored slots per evaluation seed")
    checkpoint_every: int = Field(default=50_000, ge=1, description="steps between checkpoints")


class TrainConfig(_Schedule):
    """One training run (saved in the checkpoint). ``steps`` counts environment steps (= task decisions)."""

    algo: Literal["dqn", "d3qn-lstm"] = "dqn"
    scenario: dict[str, Any]  # Scenario.model_dump(mode="json")
    steps: int = Field(ge=1)
    eval_seeds: list[int] = Field(default_factory=lambda: [1000, 1001])
    hyper: dict[str, Any] = Field(default_factory=dict)

    def hyper_model(self) -> DQNConfig | D3QNConfig:
        """The algorithm's hyper-parameters (defaults plus ``hyper``), validated."""
        return parse_hyper(self.algo, self.hyper)


class TrainOptions(_Schedule):
    """Every option of ``comllm dqn train`` (the command is generated from it): the scenario by
    name with overrides, hyper-parameters as ``key=value``; :meth:`train_config` resolves them."""

    scenario: str = Field(default="paper-6", description="preset name or YAML file")
    steps: int | None = Field(
        default=None, ge=1, description=f"environment steps (task decisions) in all; default {DEFAULT_STEPS}, or the run's own on --resume"
    )
    out: str | None = Field(default=None, description="run folder; default runs/ALGO-SCENARIO")
    algo: str = Field(default="dqn", description=f"algorithm: {' | '.join(ALGOS)}")
    resume: bool = Field(
        default=False, description="continue the run in --out from its last checkpoint", json_schema_extra={"flag": "--resume"}
    )
    overrides: list[str] = Field(
        default_factory=list, description="scenario override key=value", json_schema_extra={"flag": "--set"}
    )
    hp: list[str] = Field(
        default_factory=list,
        description="hyper-parameter key=value, e.g. gamma=0.95 (see comllm.drl.config)",
        json_schema_extra={"flag": "--hp"},
    )
    progress: bool = Field(
        default=True, description="show the progress bar", json_schema_extra={"flag": "--progress/--no-progress"}
    )

    def train_config(self, scenario: dict[str, Any], resumed_steps: int | None = None) -> TrainConfig:
        """The :class:`TrainConfig` of these options on ``scenario`` (``Scenario.model_dump(mode="json")``)."""
        from comllm.scenario import parse_overrides

        shared = {k: getattr(self, k) for k in _Schedule.model_fields}
        steps = self.steps or (resumed_steps if self.resume and resumed_steps else DEFAULT_STEPS)
        return TrainConfig(
            algo=self.algo, scenario=scenario, steps=steps, hyper=parse_overrides(self.hp), **shared  # type: ignore[arg-type]
        )


def make_train_options(**kwargs: Any) -> TrainOptions:
    """Validate ``comllm dqn train``'s options; errors name the option and the value."""
    if kwargs.get("algo", "dqn") not in ALGOS:
        raise DRLError(f"unknown --algo '{kwargs['algo']}' (known: {', '.join(ALGOS)})")
    try:
        return TrainOptions(**kwargs)
    except ValidationError as err:
        raise DRLError(format_validation_error(err, "dqn train", "option", unknown_noun="option")) from None


class CheckpointMeta(_Strict):
    """``config.json`` of a checkpoint folder."""

    format: str = META_FORMAT
    algo: Literal["dqn", "d3qn-lstm"]
    scenario: dict[str, Any]
    n_servers: int
    history_len: int
    obs_dim: int
    #: the observation layout the network was trained on (comllm.envs.observation.OBS_LAYOUT_VERSION);
    #: files without the field are layout 1, from before the fresh view
    obs_layout: int = Field(default=1, ge=1)
    feature_scale: list[float]
    train: TrainConfig
    steps_done: int = 0
    wall_s: float = 0.0
    episodes: int = 0
    best_eval_latency: float | None = None
    best_step: int | None = None
    command: str = ""

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        tmp.replace(folder / META_FILE)

    @classmethod
    def read(cls, folder: Path) -> "CheckpointMeta":
        path = folder / META_FILE
        if not path.is_file():
            raise DRLError(f"'{folder}' is not a DRL checkpoint (no {META_FILE})")
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as err:
            raise DRLError(f"bad checkpoint metadata {path}: {format_validation_error(err, 'metadata')}") from None


def parse_hyper(algo: str, values: dict[str, Any]) -> DQNConfig | D3QNConfig:
    """Validate hyper-parameters of ``algo``; errors name the field and the value."""
    if algo not in HYPER_MODELS:
        raise DRLError(f"unknown algorithm '{algo}' (known: {', '.join(ALGOS)})")
    try:
        return HYPER_MODELS[algo].model_validate(values)  # type: ignore[return-value]
    except ValidationError as err:
        known = list(HYPER_MODELS[algo].model_fields)
        raise DRLError(format_validation_error(err, algo, "hyper-parameter", known, "hyper-parameter")) from None
