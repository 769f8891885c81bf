"""GRPO with the LACS reward through TRL's ``GRPOTrainer``: resumable, logged, CPU or GPU.

A run (:func:`train_grpo`) loads a language model (:func:`comllm.lm.loading.load_lm`:
an SFT checkpoint, the shipped default, or a Hugging Face model, optionally with a
fresh LoRA adapter), renders every record's state with the model's own template
(:mod:`comllm.grpo.dataset`), and trains with the three reward callables of
:mod:`comllm.lacs.rewards` (``format``, ``task``, ``lacs``; their sum is the reference
reward of docs/model.md §8) computed from each record's simulator snapshot and deciding device.

Outputs in ``out/``:

* the final model, loadable by ``--policy llm:OUT`` (``save_pretrained`` folder plus
  ``comllm.json``, whose ``training`` field records this run);
* ``checkpoint-<step>/`` folders (TRL/Trainer state for ``--resume``; each also
  carries ``comllm.json``, so it is a loadable model);
* ``train_log.csv`` (:mod:`comllm.grpo.callbacks`), TensorBoard events in ``tb/``,
  ``grpo_config.json`` (the options) and ``train_summary.json``.

Safe to interrupt (README, "What is safe"): each ``checkpoint-<step>`` is
written by TRL into a temporary folder and renamed into place once complete
(with its ``comllm.json``); ``--resume`` continues from the newest checkpoint
whose files are all whole (:func:`incomplete_reason`), skipping the others with
a warning, and starts from step 0 when there is none; ``train_log.csv`` is cut
back to the resumed step; the folder is locked while the run lasts. Transformers
reads a checkpoint's optimizer, scheduler and random states with
``torch.load(weights_only=True)`` and its weights from safetensors.

The KL reference is a frozen copy of the starting model taken before training
(TRL would reload it from ``config._name_or_path``, which its architecture lookup
cannot do for the embedded model's custom class); with a LoRA adapter TRL uses the
adapter-disabled base model, as usual.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
import shutil
import time
import warnings
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from comllm.checkpointing import atomic_write_json, clean_staging, publish_dir, staged_files
from comllm.grpo.callbacks import LOG_FILE, CsvLogCallback, RichProgressCallback, log_columns
from comllm.grpo.config import EMBEDDED_LR, HF_LR, GRPOError, GRPORunConfig
from comllm.grpo.dataset import build_dataset
from comllm.grpo.metrics import with_decision_metrics
from comllm.lm.loading import LMError, LMMeta, LoadedLM, LoraSpec, load_lm, pick_device
from comllm.locking import is_main_process, lock_folder

CONFIG_FILE = "grpo_config.json"
SUMMARY_FILE = "train_summary.json"
#: files of a finished run that make up a shippable model folder
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "adapter_config.json",
               "adapter_model.safetensors", "tokenizer_config.json", "word_tokenizer.json", "tokenizer.json",
               "special_tokens_map.json", "chat_template.jinja", "comllm.json")  # fmt: skip
_SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def checkpoints(out: Path) -> list[Path]:
    """``checkpoint-<step>`` folders of ``out``, by step."""
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*") if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    return [p for _, p in sorted(found)]


def _whole_zip(path: Path) -> bool:
    """A ``torch.save`` file (a zip archive) whose every member has its full length and CRC (nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _whole_safetensors(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = list(f.keys())
            if keys:
                f.get_slice(keys[-1])
        return True
    except Exception:  # noqa: BLE001  (safetensors raises its own error types for a cut or damaged file)
        return False


def incomplete_reason(ck: Path) -> str | None:
    """Why ``checkpoint-<step>`` cannot be resumed from (a missing or damaged file), or None if it is whole."""
    state = ck / "trainer_state.json"
    try:
        json.loads(state.read_text())["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "trainer_state.json is missing or not readable"
    weights = [ck / n for n in ("model.safetensors", "adapter_model.safetensors") if (ck / n).is_file()]
    if not weights:
        return "it has no model.safetensors"
    for w in weights:
        if not _whole_safetensors(w):
            return f"{w.name} is damaged or cut short"
    for name in ("optimizer.pt", "scheduler.pt"):
        if not (ck / name).is_file():
            return f"it has no {name}"
    for f in [ck / "optimizer.pt", ck / "scheduler.pt", *ck.glob("rng_state*.pth")]:
        if not _whole_zip(f):
            return f"{f.name} is damaged or cut short"
    return None


def _resume_checkpoint(out: Path, log: Callable[[str], None]) -> Path | None:
    """The newest whole checkpoint of ``out``; the others are skipped with a warning."""
    for ck in reversed(checkpoints(out)):
        why = incomplete_reason(ck)
        if why is None:
            return ck
        log(f"warning: skipping checkpoint '{ck}': {why}")
    return None


def _auto_threads() -> int:
    from comllm.lm.sft import auto_threads

    return auto_threads()


def _make_trainer_class() -> type:
    """``GRPOTrainer`` that takes the KL reference as a frozen copy of the starting model (see the module docstring)."""
    from trl import GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

    class ComllmGRPOTrainer(GRPOTrainer):
        def __init__(self, *args: Any, ref_beta: float = 0.0, ref_model: torch.nn.Module | None = None,
                     comllm_meta: LMMeta | None = None, **kwargs: Any):  # fmt: skip
            super().__init__(*args, **kwargs)
            self.comllm_meta = comllm_meta
            if ref_model is None:
                return
            self.beta = ref_beta
            self.args.beta = ref_beta  # saved with the checkpoints' training args
            if self.args.disable_dropout:
                disable_dropout_in_model(ref_model)
            add_fused_lm_head(ref_model, temperature=self.temperature, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32)
            self.ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            """TRL's checkpoint, written into a temporary folder and renamed ``checkpoint-<step>`` once complete."""
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

            out = Path(self.args.output_dir)
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            staging = out / f".{name}.tmp-0"  # the same name in every process of a launcher
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
            self.accelerator.wait_for_everyone()
            self.args.output_dir = str(staging)
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self.args.output_dir = str(out)
            self.accelerator.wait_for_everyone()  # every process wrote its part (its random state)
            if self.args.should_save:
                if self.comllm_meta is not None:
                    self.comllm_meta.save(staging / name)  # every checkpoint is a model llm:PATH loads
                publish_dir(staging / name, out / name)
                shutil.rmtree(staging, ignore_errors=True)
                rotate_checkpoints(str(out), save_total_limit=self.args.save_total_limit,
                                   best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False)  # fmt: skip
            self.accelerator.wait_for_everyone()

    return ComllmGRPOTrainer


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def _resolve_config(cfg: GRPORunConfig, out: Path, log: Callable[[str], None] = print) -> tuple[GRPORunConfig, Path | None]:
    """The run's options and the checkpoint to resume from (None: from step 0).

    On ``--resume``, the saved run's options win, except bookkeeping and a larger
    ``--steps``; with no whole checkpoint yet the saved run starts again from step 0.
    """
    ckpts = checkpoints(out)
    if cfg.resume:
        path = out / CONFIG_FILE
        if not path.is_file():
            if not ckpts:
                raise GRPOError(f"--resume: no checkpoint-* folder in '{out}'")
            raise GRPOError(f"--resume: '{out}' has no {CONFIG_FILE}; it was not written by comllm grpo")
        try:
            saved = GRPORunConfig(**json.loads(path.read_text()))
        except (ValueError, TypeError) as err:  # not JSON, or options that do not validate
            raise GRPOError(f"--resume: '{path}' is not a readable {CONFIG_FILE}: {str(err).splitlines()[0][:160]}") from None
        update: dict[str, Any] = {"resume": True, "progress": cfg.progress, "threads": cfg.threads}
        if cfg.steps is not None:
            update["steps"] = cfg.steps
        last = _resume_checkpoint(out, log)
        if last is None:
            log(f"warning: '{out}' holds no whole checkpoint (interrupted before the first one): "
                "training starts from step 0")  # fmt: skip
            update["resume"] = False
        return saved.model_copy(update=update), last
    if out.is_dir() and (ckpts or (out / "config.json").exists()):
        raise GRPOError(f"output folder '{out}' already holds a run; use --resume or another --out")
    if (out / CONFIG_FILE).exists():
        log(f"warning: '{out}' holds a run interrupted before its first checkpoint: it is started again")
    return cfg, None


def _load_model(cfg: GRPORunConfig, device: str) -> LoadedLM:
    lora = LoraSpec(r=cfg.lora_r, alpha=cfg.lora_alpha) if cfg.lora else None
    try:
        lm = load_lm(cfg.model, template=cfg.template, lora=lora, four_bit=cfg.four_bit, dtype=cfg.dtype,
                     device=device, trainable=True)  # fmt: skip
    except LMError as err:
        raise GRPOError(str(err)) from None
    if cfg.lora and lm.is_embedded:
        raise GRPOError("--lora is for Hugging Face models; the embedded model is trained in full")
    if lm.is_embedded and cfg.dtype == "auto":
        lm.model.float()  # a 2 M-parameter model keeps fp32 master weights (bf16 runs as autocast on a GPU)
    return lm


def grpo_args(cfg: GRPORunConfig, out: Path, lr: float, device: str, bf16: bool) -> Any:
    """TRL's ``GRPOConfig`` for a run (docs/model.md §9 values from ``cfg``; no tqdm, no report_to: ours log)."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out),
        use_cpu=device == "cpu",
        bf16=bf16,
        fp16=False,
        activation_checkpointing=False,  # tiny models: recomputation costs more than it saves
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        gradient_accumulation_steps=1,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        learning_rate=lr,
        lr_scheduler_type=_SCHEDULERS[cfg.schedule],
        warmup_steps=cfg.warmup,
        beta=cfg.beta,
        entropy_coef=cfg.entropy_coef,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.steps or -1,
        num_train_epochs=cfg.epochs,
        seed=cfg.seed,
        logging_steps=cfg.log_every,
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=cfg.keep,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        log_completions=False,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        **({"vllm_server_base_url": cfg.vllm_server_base_url} if cfg.vllm_server_base_url else {}),
    )


def train_grpo(cfg: GRPORunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) GRPO as configured; returns a summary (steps, wall time, last rewards).

    The output folder is locked while the run lasts: a second run into it stops
    with a :class:`~comllm.locking.LockError` naming this one's pid.
    """
    out = Path(cfg.out)
    if cfg.resume and not out.is_dir():
        raise GRPOError(f"--resume: no checkpoint-* folder in '{out}'")
    with lock_folder(out, "grpo", log=log):
        if is_main_process():
            clean_staging(out)
        return _train_grpo(cfg, log)


def _start(cfg: GRPORunConfig, out: Path, log: Callable[[str], None]) -> tuple[GRPORunConfig, Path | None, int, str, Any]:
    """The resolved config, the checkpoint to resume from, threads, device and reward config, checked before the model loads.

    Raises :class:`GRPOError` for a missing data file; invalid reward options raise from ``cfg.reward_config()``.
    """
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    cfg, last = _resolve_config(cfg, out, log if is_main_process() else (lambda msg: None))
    threads = cfg.threads or _auto_threads()
    torch.set_num_threads(threads)
    device = pick_device(cfg.device)
    for path in cfg.data:
        if not Path(path).is_file():
            raise GRPOError(f"data file '{path}' does not exist")
    reward_config = cfg.reward_config()  # validates the reward options before the model loads
    return cfg, last, threads, device, reward_config


def _build_trainer(
    cfg: GRPORunConfig, out: Path, last: Path | None, lm: LoadedLM, dataset: Any, funcs: list, names: list[str],
    lr: float, device: str, bf16: bool, log: Callable[[str], None],
) -> tuple[Any, Any, Any]:  # fmt: skip
    """(trainer, CSV log callback, TensorBoard writer): the frozen reference (``beta > 0`` without an adapter),
    the CSV log and TensorBoard events cut back to ``last``'s step when resuming, and the trainer on them."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers import PrinterCallback
    from transformers.integrations import TensorBoardCallback

    peft = hasattr(lm.model, "peft_config")
    ref = _frozen_copy(lm.model) if cfg.beta > 0 and not peft else None
    args = grpo_args(cfg, out, lr, device, bf16)
    if ref is not None:
        args.beta = 0.0  # TRL must not build its own reference; ours is installed after __init__
    csv_cb = CsvLogCallback(out / LOG_FILE, log_columns(names), resume=cfg.resume)
    if last is not None:
        csv_cb.truncate_after(int(last.name.split("-")[1]))
    meta = LMMeta(**asdict(lm.meta))
    writer = SummaryWriter(str(out / "tb"), purge_step=int(last.name.split("-")[1]) if last is not None else None)
    trainer = _make_trainer_class()(
        model=lm.model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=lm.tokenizer,
        callbacks=[csv_cb, RichProgressCallback("grpo", cfg.progress, log), TensorBoardCallback(tb_writer=writer)],
        ref_beta=cfg.beta,
        ref_model=ref,
        comllm_meta=meta,
    )
    trainer.remove_callback(PrinterCallback)  # ours print (or draw) the logs
    return trainer, csv_cb, writer


def _fit(trainer: Any, last: Path | None) -> tuple[Any, float]:
    """``trainer.train`` (resumed from ``last``) and its wall time; a checkpoint that is not plain data is a :class:`GRPOError`."""
    t0 = time.time()
    if last is not None and int(last.name.split("-")[1]) >= trainer.args.max_steps:
        # the run was stopped after its last checkpoint: nothing is left to train (resuming there
        # would run one step past max_steps); take the checkpoint's weights and state as they are
        from types import SimpleNamespace

        from transformers import TrainerState

        trainer._load_from_checkpoint(str(last))
        trainer.state = TrainerState.load_from_json(str(last / "trainer_state.json"))
        losses = [h["train_loss"] for h in trainer.state.log_history if "train_loss" in h]
        return SimpleNamespace(training_loss=losses[-1] if losses else float("nan")), time.time() - t0
    try:
        result = trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
    except pickle.UnpicklingError as err:  # transformers reads the checkpoint with torch.load(weights_only=True)
        if last is None:
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise GRPOError(f"checkpoint '{last}' holds a file that is not plain data; it is not loaded ({first})") from None
    return result, time.time() - t0


def _summary(
    cfg: GRPORunConfig, lm: LoadedLM, trainer: Any, result: Any, names: list[str], wall: float, elapsed_before: float,
    threads: int, device: str, lr: float,
) -> dict[str, Any]:  # fmt: skip
    """The run's ``summary.json``: steps, wall times, the rewards averaged over the last tenth of the logged steps, config."""
    history = [h for h in trainer.state.log_history if "reward" in h]
    tail = history[-max(1, len(history) // 10) :] if history else []
    final = {k: sum(h[k] for h in tail if h.get(k) is not None) / max(1, sum(h.get(k) is not None for h in tail))
             for k in ("reward", *(f"rewards/{n}/mean" for n in names), "decisions/valid", "decisions/greedy_agree",
                       "decisions/cost_ratio", "kl")}  # fmt: skip
    return {
        "stage": "grpo",
        "steps": trainer.state.global_step,
        "train_wall_s": round(elapsed_before + wall, 1),  # all sessions of a resumed run
        "session_wall_s": round(wall, 1),
        "threads": threads,
        "device": device,
        "lr": lr,
        "last_rewards": {k: float(f"{v:.6g}") for k, v in final.items()},
        "train_loss": result.training_loss,
        "init_model": cfg.model,
        "init_training": {k: lm.meta.training.get(k) for k in ("stage", "steps", "train_wall_s")} if lm.meta.training else None,
        "config": cfg.model_dump(exclude={"progress", "resume"}),
    }


def _train_grpo(cfg: GRPORunConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """One (possibly resumed) GRPO session under ``cfg.out``: checks, model and prompts, training, then the final
    model saved whole and ``summary.json`` written last (main process only); returns the summary."""
    from comllm.lacs.rewards import make_reward_funcs

    out = Path(cfg.out)
    cfg, last, threads, device, reward_config = _start(cfg, out, log)
    lm = _load_model(cfg, device)
    t0 = time.time()
    dataset = build_dataset(lm, cfg.data, cfg.max_records)
    log(f"{len(dataset)} prompts from {', '.join(cfg.data)} in {time.time() - t0:.1f}s (template {lm.meta.template})")

    funcs = make_reward_funcs(reward_config)
    funcs[0] = with_decision_metrics(funcs[0])
    names = [f.__name__ for f in funcs]
    lr = cfg.lr or (EMBEDDED_LR if lm.is_embedded else HF_LR)
    bf16 = cfg.bf16 if cfg.bf16 is not None else (device.startswith("cuda") and torch.cuda.is_bf16_supported())
    if bf16 and not device.startswith("cuda"):
        raise GRPOError("--bf16 needs a CUDA GPU (bf16 on this CPU is slower than fp32)")
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and is_main_process():
        atomic_write_json(out / CONFIG_FILE, cfg.model_dump(exclude={"resume", "progress"}))
        shutil.rmtree(out / "tb", ignore_errors=True)  # events of a run interrupted before its first checkpoint

    trainer, csv_cb, writer = _build_trainer(cfg, out, last, lm, dataset, funcs, names, lr, device, bf16, log)
    n_params = sum(p.numel() for p in lm.model.parameters())
    n_train = sum(p.numel() for p in lm.model.parameters() if p.requires_grad)
    log(f"model {lm.source}: {n_params / 1e6:.2f} M parameters ({n_train / 1e6:.2f} M trained), lacs={cfg.lacs} "
        f"(lambda {cfg.lacs_weight}, H {cfg.horizon}, K {cfg.rollouts}), {cfg.prompts_per_step} prompts x G "
        f"{cfg.num_generations} per step, lr {lr:g} {cfg.schedule}, beta {cfg.beta}, T {cfg.temperature}, "
        f"{threads} threads, {device}" + (f"; resuming from {last}" if last else ""))  # fmt: skip

    result, wall = _fit(trainer, last)
    writer.close()
    summary = _summary(cfg, lm, trainer, result, names, wall, csv_cb.elapsed_before, threads, device, lr)
    trained = LoadedLM(model=trainer.accelerator.unwrap_model(trainer.model), tokenizer=lm.tokenizer,
                       meta=LMMeta(**{**asdict(lm.meta), "training": summary}), source=str(out))  # fmt: skip
    if trainer.accelerator.is_main_process:
        with staged_files(out) as tmp:  # each file replaced whole; the summary, written last, says "finished"
            trained.save(tmp)
        atomic_write_json(out / SUMMARY_FILE, summary)
    log(f"saved {out} after {summary['steps']} steps, {wall / 60:.1f} min of training")
    return summary


def export_model(run: str | Path, dest: str | Path) -> Path:
    """Copy the final model of a run (weights, tokenizer, ``comllm.json``) and its logs into ``dest``."""
    import shutil

    run, dest = Path(run), Path(dest)
    if not (run / "comllm.json").is_file():
        raise GRPOError(f"'{run}' holds no finished model (no comllm.json)")
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*MODEL_FILES, LOG_FILE, SUMMARY_FILE):
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
    return dest
