"""Trained DRL agents as policies: ``dqn:PATH`` and ``d3qn:PATH``.

``PATH`` is a folder written by ``comllm dqn train`` or the name of a shipped
agent (``comllm/checkpoints/<name>``; ``dqn:6`` means ``dqn-6`` and
``d3qn:11`` means ``d3qn-11``). ``dqn:`` reads the algorithm from the
checkpoint, so it loads either kind; ``d3qn:`` insists on a D3QN-LSTM. The
agent's best weights are used (the best closed-loop evaluation during
training); ``PATH@last`` takes the final ones. On a scenario with another
server count the policy refuses with a :class:`PolicyError`: a fixed-size
network is tied to the topology it was trained on; so does a checkpoint of an
older observation layout (:func:`comllm.drl.checkpoint.check_layout`). Under
``decisions=sequential`` the policy is handed one task per call
(:meth:`comllm.sim.MECSimulator.decide`), whose observation shows the slot's
earlier decisions.
"""

from __future__ import annotations

from comllm.drl.checkpoint import load_policy, resolve_checkpoint, shipped_checkpoints
from comllm.drl.config import CheckpointMeta, DRLError
from comllm.drl.policy import QPolicy
from comllm.policies.base import PolicyError, register_policy
from comllm.scenario import Scenario


def _load(kind: str, arg: str | None, prefix: str) -> QPolicy:
    if not arg:
        shipped = ", ".join(shipped_checkpoints()) or "none"
        raise PolicyError(f"policy '{kind}' needs a checkpoint: {kind}:PATH (shipped: {shipped})")
    import torch

    torch.set_num_threads(1)  # networks of a few thousand weights: more threads only contend
    which = "best"
    if arg.endswith(("@last", "@best")):
        arg, _, which = arg.rpartition("@")
    try:
        folder = resolve_checkpoint(arg, prefix)
        if kind == "d3qn" and CheckpointMeta.read(folder).algo != "d3qn-lstm":
            raise PolicyError(f"'{arg}' holds a DQN agent, not a D3QN-LSTM: use dqn:{arg}")
        return load_policy(folder, which)
    except DRLError as err:
        raise PolicyError(str(err)) from None


@register_policy("dqn", "trained DRL agent (DQN or D3QN-LSTM): dqn:PATH or a shipped name")
def _dqn(arg: str | None, scenario: Scenario | None) -> QPolicy:
    return _load("dqn", arg, "dqn")


@register_policy("d3qn", "trained D3QN-LSTM agent (Tang & Wong): d3qn:PATH or a shipped name")
def _d3qn(arg: str | None, scenario: Scenario | None) -> QPolicy:
    return _load("d3qn", arg, "d3qn")
