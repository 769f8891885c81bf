"""Gymnasium environments. Importing this package registers ``comllm/MEC-v0``::

    import gymnasium as gym
    import comllm.envs  # noqa: F401
    env = gym.make("comllm/MEC-v0", scenario="paper-6", episode_slots=200, arrival_prob=0.4)
"""

import gymnasium as gym

from comllm.envs.mec import EnvError, MECEnv
from comllm.envs.observation import (
    OBS_LAYOUT_VERSION,
    ObsLayout,
    ScaleObservation,
    feature_scale,
    observation_from_batch,
    observation_space,
)

ENV_ID = "comllm/MEC-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="comllm.envs.mec:MECEnv")

__all__ = [
    "ENV_ID",
    "EnvError",
    "MECEnv",
    "OBS_LAYOUT_VERSION",
    "ObsLayout",
    "ScaleObservation",
    "feature_scale",
    "observation_from_batch",
    "observation_space",
]
