"""Policies: one interface (a batch of states in, actions out) and a registry."""

from comllm.policies.base import Policy, PolicyError, available_policies, make_policy, register_policy
from comllm.policies import heuristics  # noqa: F401  (registers the heuristics)

__all__ = ["Policy", "PolicyError", "available_policies", "make_policy", "register_policy"]
