"""DRL baselines on ``comllm/MEC-v0``: SB3 DQN and Tang & Wong's D3QN-LSTM.

* :func:`comllm.drl.train.train` trains either (``comllm dqn train``);
* :func:`comllm.drl.checkpoint.load_policy` turns a run folder into a
  :class:`~comllm.policies.Policy` (``--policy dqn:PATH``);
* :mod:`comllm.drl.credit` credits each transition when its task ends.

Heavy imports (torch, Stable-Baselines3) happen in the submodules.
"""
