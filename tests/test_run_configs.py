"""Each run's options come from one config definition; the LACS defaults are stated once.

Issue 14, first bullet: the CLI options of ``sft``, ``grpo``, ``dqn train``, ``simulate`` and
``pipeline`` and the pipeline's YAML keys come from the run configs; ``LacsSettings``
(``LACS_DEFAULTS``) is the one source of the LACS defaults (horizon 5, rollouts 16, lambda 0.3).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from comllm.lacs.lookahead import LACS_DEFAULTS, LacsSettings, lacs_scores, lacs_scores_batch

ROOT = Path(__file__).resolve().parents[1]


def test_lacs_defaults_are_stated_once() -> None:
    """No module but ``lookahead.py`` writes the LACS default numbers as a default value."""
    literal = re.compile(
        r"(horizon|rollouts|lam|lacs_weight)\s*(:\s*\w+\s*)?=\s*(Field\(|opt\(|typer\.Option\()?\s*(5|16|0\.3)\b"
    )
    found = []
    for path in sorted((ROOT / "comllm").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line) and path.name != "lookahead.py":
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, found
    src = (ROOT / "comllm/lacs/lookahead.py").read_text()
    assert len(re.findall(r"^\s+(horizon|rollouts|lam): \w+ = (5|16|0\.3)$", src, re.M)) == 3  # in LacsSettings only


def test_lacs_defaults_everywhere_equal_lacs_settings() -> None:
    from comllm.grpo.config import GRPORunConfig
    from comllm.lacs.improve import ImproveConfig
    from comllm.lacs.planner import LacsPlanner
    from comllm.lacs.reference import reference_scores, reference_scores_batch
    from comllm.lacs.rewards import RewardConfig

    d = LacsSettings()
    assert (d.horizon, d.rollouts, d.lam) == (LACS_DEFAULTS.horizon, LACS_DEFAULTS.rollouts, LACS_DEFAULTS.lam)
    for fn in (lacs_scores, lacs_scores_batch, LacsPlanner.__init__):
        params = inspect.signature(fn).parameters
        assert (params["horizon"].default, params["rollouts"].default, params["lam"].default) == (d.horizon, d.rollouts, d.lam)
    for fn in (reference_scores, reference_scores_batch):
        assert inspect.signature(fn).parameters["lam"].default == d.lam
    assert RewardConfig().lacs_settings() == d
    imp = ImproveConfig()
    assert (imp.horizon, imp.rollouts, imp.lam) == (d.horizon, d.rollouts, d.lam)
    f = GRPORunConfig.model_fields
    assert (f["horizon"].default, f["rollouts"].default, f["lacs_weight"].default) == (d.horizon, d.rollouts, d.lam)
    assert LacsPlanner().settings == d


# ------------------------------------------------------------- CLI options from the configs
def _command(*path: str):  # type: ignore[no-untyped-def]
    from typer.main import get_command

    from comllm.cli import app

    cmd = get_command(app)
    for p in path:
        cmd = cmd.commands[p]  # type: ignore[attr-defined]
    return cmd


def _check_command(cls: type, *path: str, skip: tuple[str, ...] = ()) -> None:
    """Every field of ``cls`` is an option of ``comllm PATH`` with the field's default and names."""
    from comllm.cli.from_config import _MISSING, config_fields, option_names

    params = {p.name: p for p in _command(*path).params}
    fields = [f for f in config_fields(cls) if f.name not in skip]
    assert fields
    for f in fields:
        assert f.name in params, f"{' '.join(path)}: no option for field {f.name}"
        p = params[f.name]
        assert sorted(p.opts + p.secondary_opts) == sorted(option_names(f)), f.name
        if f.default is _MISSING:
            assert p.required, f.name
        elif isinstance(f.default, (list, tuple)):
            assert list(p.default or []) == list(f.default), f.name
        else:
            assert p.default == f.default, f.name
    extra = set(params) - {f.name for f in fields} - {"help"}
    assert not extra, f"{' '.join(path)}: options without a config field: {sorted(extra)}"


def test_grpo_options_are_the_run_config() -> None:
    from comllm.grpo.config import REWARD_FIXED, REWARD_NAMES, GRPORunConfig
    from comllm.lacs.rewards import RewardConfig

    _check_command(GRPORunConfig, "grpo")
    # the reward config is inside the run config: every reward option, with its default
    fields = GRPORunConfig.model_fields
    for f in __import__("dataclasses").fields(RewardConfig):
        if f.name in REWARD_FIXED:
            continue
        assert fields[REWARD_NAMES.get(f.name, f.name)].default == f.default, f.name
    # the flags scripts and the pipeline use
    names = {n for p in _command("grpo").params for n in p.opts + p.secondary_opts}
    for flag in ("--lacs-weight", "--horizon", "--rollouts", "--4bit", "--lora", "--resume", "-G", "--no-progress",
                 "--bf16", "--no-bf16", "--use-vllm", "--drop-cost", "--data", "--out"):  # fmt: skip
        assert flag in names, flag


def test_sft_options_are_the_run_config() -> None:
    from comllm.lm.model import ModelShape as ModelModelShape
    from comllm.sft_config import ModelShape, SFTConfig

    _check_command(SFTConfig, "sft")
    assert ModelModelShape is ModelShape  # one shape definition, its defaults the options'
    fields = SFTConfig.model_fields
    shape = ModelShape()
    assert [fields[n].default for n in ("hidden", "layers", "heads", "intermediate")] == [
        shape.hidden, shape.layers, shape.heads, shape.intermediate
    ]


def test_reading_the_options_loads_no_transformers() -> None:
    import subprocess
    import sys

    code = "import sys, comllm.cli; print('transformers' in sys.modules, 'trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_dqn_train_options_are_the_run_config() -> None:
    from comllm.drl.config import TrainConfig, TrainOptions, _Schedule

    _check_command(TrainOptions, "dqn", "train")
    names = {n for p in _command("dqn", "train").params for n in p.opts + p.secondary_opts}
    assert {"--set", "--hp", "--resume", "--no-progress", "--episode-slots", "--checkpoint-every"} <= names
    for name in _Schedule.model_fields:  # one definition of what the run and the command share
        assert TrainConfig.model_fields[name] is _Schedule.model_fields[name] or (
            TrainConfig.model_fields[name].default == TrainOptions.model_fields[name].default
        )


def test_simulate_options_are_the_run_config() -> None:
    from comllm.evaluate.config import SimulateConfig

    _check_command(SimulateConfig, "simulate")


# ------------------------------------------------------------------ pipeline keys from the configs
def _sections():  # type: ignore[no-untyped-def]
    from comllm.experiments import config as C

    return {"sft": C.SFTConfig, "grpo": C.GRPOConfig, "dqn": C.DQNConfig}


def test_pipeline_sections_are_the_run_configs() -> None:
    """Every option of sft, grpo and dqn train is a key of its section with the command's default
    (or the pipeline's documented one), or is set by the pipeline itself."""
    set_by_pipeline = {"sft": {"data", "out", "seed", "resume"}, "grpo": {"model", "data", "out", "seed", "resume", "lacs"},
                       "dqn": {"algo", "scenario", "out", "seed", "resume"}}  # fmt: skip
    own = {"sft": {"args"}, "grpo": {"enabled", "args", "method"}, "dqn": {"enabled", "algos", "args"}}
    pipeline_defaults = {"sft": {"template": "annotated-compact"}, "grpo": {"steps": 200}, "dqn": {"steps": 60_000}}
    for name, section in _sections().items():
        run = section.run_config
        keys = section.model_fields
        assert set(keys) == (set(run.model_fields) - set_by_pipeline[name]) | own[name], name
        assert section.pipeline_defaults == pipeline_defaults[name]
        for key in set(run.model_fields) - set_by_pipeline[name]:
            want = pipeline_defaults[name].get(key, run.model_fields[key].get_default(call_default_factory=True))
            assert keys[key].get_default(call_default_factory=True) == want, (name, key)
            assert keys[key].metadata == run.model_fields[key].metadata, (name, key)  # same constraints


def test_eval_keys_are_simulate_options() -> None:
    from comllm.evaluate.config import SimulateConfig
    from comllm.experiments.config import EvalConfig

    for key in ("slots", "warmup", "seeds"):
        assert EvalConfig.model_fields[key].default == SimulateConfig.model_fields[key].default
        assert EvalConfig.model_fields[key].metadata == SimulateConfig.model_fields[key].metadata


def test_pipeline_options_are_its_config() -> None:
    from comllm.experiments.config import PipelineConfig, PipelineOptions

    _check_command(PipelineOptions, "pipeline")
    assert PipelineConfig.model_fields["run_dir"].default == "runs/paper"  # --run-dir overrides it; default: the file's


def test_pipeline_passes_its_keys_to_the_commands_under_their_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The flags the pipeline writes, parsed by the commands themselves, give back the section's values."""
    from comllm.experiments.config import load_config
    from comllm.experiments.pipeline import Pipeline

    paths = {"sft": ("sft",), "grpo": ("grpo",), "comllm": ("improve",), "dqn": ("dqn", "train")}
    for yaml_file in ("configs/tiny.yaml", "configs/paper.yaml"):
        cfg = load_config(ROOT / yaml_file, {"run_dir": str(tmp_path)}, ["grpo.method=trl"])
        pipe = Pipeline(cfg, log=lambda m: None)
        for stage, path in paths.items():
            section = getattr(cfg, "improve" if stage == "comllm" else stage)
            argv = pipe.stage_commands(stage)[0][len(path):]
            argv = argv[: len(argv) - len(section.args)] if section.args else argv
            params = _command(*path).make_context(path[-1], list(argv)).params
            for key in type(section).model_fields:
                if key in params and not (stage == "grpo" and key in ("lacs_weight", "horizon", "rollouts")):
                    got, want = params[key], getattr(section, key)
                    if isinstance(want, list):
                        got = list(got or [])
                    assert got == want, (yaml_file, stage, key, got, want)
        assert "--lacs" in pipe.stage_commands("grpo")[0] and "off" in pipe.stage_commands("grpo")[0]
        # grpo.method all-actions (the configs' own): comllm improve with the improve keys, no look-ahead
        cfg.grpo.method = "all-actions"
        params = _command("improve").make_context("improve", pipe.stage_commands("grpo")[0][1:]).params
        assert params["lam"] == 0 and params["horizon"] == 0 and params["out"].endswith("grpo")
        assert params["iterations"] == cfg.improve.iterations and params["objective"] == cfg.improve.objective


def test_the_comllm_stage_runs_the_all_action_stage_or_trl_grpo_with_lacs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from comllm.experiments.config import load_config
    from comllm.experiments.pipeline import Pipeline

    cfg = load_config(ROOT / "configs/tiny.yaml", {"run_dir": str(tmp_path)}, ["improve.iterations=3"])
    cmd = Pipeline(cfg, log=lambda m: None).stage_commands("comllm")[0]
    assert cmd[0] == "improve" and cmd[cmd.index("--iterations") + 1] == "3" and cmd[cmd.index("--model") + 1].endswith("sft")
    cfg = load_config(ROOT / "configs/tiny.yaml", {"run_dir": str(tmp_path)}, ["improve.method=grpo"])
    cmd = Pipeline(cfg, log=lambda m: None).stage_commands("comllm")[0]
    assert cmd[0] == "grpo" and cmd[cmd.index("--lacs") + 1] == "sim"
