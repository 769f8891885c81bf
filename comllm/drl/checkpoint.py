"""Finding and loading trained DRL agents (run folders and the agents shipped with comllm).

Loading reads data only: ``config.json`` (JSON), weights as safetensors, or,
for DQN runs of older comllm versions, the ``policy.pth`` tensors of their SB3
zip (never its pickled ``data``); see :mod:`comllm.drl.sb3`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comllm.drl.config import META_FILE, CheckpointMeta, DRLError
from comllm.drl.policy import QPolicy
from comllm.envs.observation import ObsLayout

#: agents shipped with the package: comllm/checkpoints/<name>/
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"

#: weights files of each algorithm: (best, last), newest format first
_FILES = {
    "dqn": (("best_model.safetensors", "best_model.zip"), ("model.safetensors", "model.zip")),
    "d3qn-lstm": (("best_model.safetensors",), ("model.safetensors",)),
}


def shipped_checkpoints() -> list[str]:
    """Names of the DRL agents shipped in ``comllm/checkpoints``."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / META_FILE).is_file())


def resolve_checkpoint(arg: str, prefix: str | None = None) -> Path:
    """A run folder: ``arg`` itself, or a shipped agent ``arg`` / ``<prefix>-<arg>``."""
    path = Path(arg)
    if path.is_file() and path.name == META_FILE:
        path = path.parent
    if (path / META_FILE).is_file():
        return path
    names = [arg] + ([f"{prefix}-{arg}"] if prefix else [])
    for name in names:
        if "/" not in name and (SHIPPED_DIR / name / META_FILE).is_file():
            return SHIPPED_DIR / name
    shipped = ", ".join(shipped_checkpoints()) or "none"
    raise DRLError(
        f"no DRL checkpoint at '{arg}' (give a folder written by `comllm dqn train`, or a shipped agent: {shipped})"
    )


def weights_file(folder: Path, meta: CheckpointMeta, which: str = "best") -> Path:
    """The weights to load: ``best`` (best closed-loop evaluation, falling back to last) or ``last``."""
    best, last = _FILES[meta.algo]
    order = (*best, *last) if which == "best" else last
    for name in order:
        if (folder / name).is_file():
            return folder / name
    raise DRLError(f"checkpoint '{folder}' has no {' or '.join(order)}")


def check_layout(folder: Path, meta: CheckpointMeta) -> None:
    """Refuse, in one line, a checkpoint trained on another observation layout than today's.

    The layout (:mod:`comllm.envs.observation`) is recorded as ``obs_layout`` in
    ``config.json``; checkpoints without it are layout 1 (``4 + 3N + N·H`` values,
    before the fresh view). A network of a fixed input size cannot read today's
    observation: it must be retrained.
    """
    want = ObsLayout(meta.n_servers, meta.history_len)
    if meta.obs_layout == want.version and meta.obs_dim == want.size:
        return
    old = " = 4 + 3N + N·H, before the fresh view" if meta.obs_layout == 1 else ""
    raise DRLError(
        f"checkpoint '{folder}' was trained for an observation of {meta.obs_dim} values (layout {meta.obs_layout}"
        f"{old}); this comllm's observation for {meta.n_servers} servers and a {meta.history_len}-slot history has "
        f"{want.size} values (layout {want.version} = 6 + 5N + N·H, with the servers' incoming traffic): retrain it "
        f"(comllm dqn train --scenario ...)"
    )


def load_policy(folder: Path, which: str = "best") -> QPolicy:
    """The greedy policy of the agent in ``folder`` (its best weights by default).

    Refuses a checkpoint of another observation layout (:func:`check_layout`).
    """
    meta = CheckpointMeta.read(folder)
    check_layout(folder, meta)
    path = weights_file(folder, meta, which)
    if meta.algo == "dqn":
        from comllm.drl.sb3 import load_q_function

        q_fn = load_q_function(path, meta.obs_dim, meta.n_servers + 1, meta.train.hyper)
    else:
        from comllm.drl.d3qn import load_d3qn

        q_fn = load_d3qn(folder, meta, path.name)
    scale = np.asarray(meta.feature_scale, dtype=np.float32)
    if scale.shape != (meta.obs_dim,):
        raise DRLError(f"checkpoint '{folder}': feature_scale has {scale.size} values, obs_dim is {meta.obs_dim}")
    return QPolicy(
        q_fn, scale, meta.n_servers, meta.history_len, name=meta.algo, trained_on=str(meta.scenario.get("name", "?"))
    )
