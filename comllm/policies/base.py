"""The policy interface and registry.

A policy maps a batch of task states (one server count) to one action per task:
0 = run locally, j = offload to server j. Policies are built by name through
the registry, ``make_policy("greedy")`` or ``make_policy("dqn:runs/dqn-6",
scenario)``; ``NAME:ARG`` passes ``ARG`` to the factory.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from comllm.errors import ComllmError, short
from comllm.scenario import Scenario
from comllm.state import StateBatch


class PolicyError(ComllmError, ValueError):
    """Unknown policy, bad argument, or a policy that cannot serve a scenario."""


class Policy:
    """Base class: override :meth:`act`. ``name`` is how reports label the policy.

    Capabilities, read by the evaluators (class attributes, overridden where they differ):

    * ``needs_simulator``: plans on the live simulator; the closed-loop evaluator and the
      data generator call :meth:`bind` with it before an episode (the policy must not advance it);
    * ``slow``: a decision costs milliseconds or more (a language model, the planner), so
      quick evaluations may leave it out;
    * ``batchable``: :meth:`act` decides a whole batch in one call (False: it is called with
      one task at a time, as under ``decisions=sequential`` anyway);
    * ``stateless``: its decisions depend on the batch only (no per-episode memory or
      randomness), so the closed-loop evaluator may decide several seeds' tasks in one call
      (:func:`comllm.evaluate.closed_loop.run_episodes`).
    """

    name: str = "policy"
    needs_simulator: bool = False
    slow: bool = False
    batchable: bool = True
    stateless: bool = False

    def act(self, batch: StateBatch) -> np.ndarray:
        """One action per task of ``batch``, shape ``(len(batch),)``, ints in 0..N."""
        raise NotImplementedError

    def reset(self, seed: int | None = None) -> None:
        """Called at the start of each evaluation episode (seeds any randomness)."""

    def bind(self, sim: object) -> None:
        """Policies with ``needs_simulator`` get the episode's live simulator here."""

    def check_scenario(self, scenario: Scenario) -> None:
        """Raise :class:`PolicyError` if this policy cannot act in ``scenario``."""

    @property
    def stats(self) -> dict[str, float]:
        """Counters a policy wants reported (e.g. invalid answers of a language model)."""
        return {}


PolicyFactory = Callable[[str | None, Scenario | None], Policy]
_REGISTRY: dict[str, PolicyFactory] = {}
_HELP: dict[str, str] = {}
_CLASSES: dict[str, type[Policy]] = {}


def register_policy(name: str, help: str = "", cls: type[Policy] = Policy) -> Callable[[PolicyFactory], PolicyFactory]:
    """Decorator: register ``factory(arg, scenario) -> Policy`` under ``name``; ``cls`` is the class it
    builds (its capabilities are read without building a policy, see :func:`policy_class`)."""

    def deco(factory: PolicyFactory) -> PolicyFactory:
        _REGISTRY[name] = factory
        _HELP[name] = help
        _CLASSES[name] = cls
        return factory

    return deco


def policy_class(spec: str) -> type[Policy]:
    """The class a ``NAME[:ARG]`` spec builds (its capabilities: ``needs_simulator``, ``slow``, ...)."""
    name = spec.partition(":")[0].strip()
    if name not in _REGISTRY:
        _load_plugins(name)
    if name not in _REGISTRY:
        _load_plugins()  # the error lists every policy installed
        raise PolicyError(f"unknown policy '{spec}' (known: {', '.join(sorted(_REGISTRY))})")
    return _CLASSES[name]


def available_policies() -> dict[str, str]:
    """Registered policy names with a one-line description."""
    _load_plugins()
    return dict(sorted(_HELP.items()))


def _load_plugins(name: str | None = None) -> None:
    """Import the module that registers policy ``name`` (every policy module when None).

    Policies register where they live, on import; the entry points of group
    ``comllm.policies`` (``pyproject.toml``, or any installed package's) map a policy name
    to its module, so ``--policy greedy`` does not import torch and ``--policy dqn:6``
    imports the DRL code only.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="comllm.policies"):
        if name is None or ep.name == name:
            ep.load()


def make_policy(spec: str, scenario: Scenario | None = None) -> Policy:
    """Build a policy from ``NAME`` or ``NAME:ARG``; check it can serve ``scenario``."""
    name, _, arg = spec.partition(":")
    name = name.strip()
    if name not in _REGISTRY:
        _load_plugins(name)
    if name not in _REGISTRY:
        _load_plugins()  # the error lists every policy installed
        raise PolicyError(f"unknown policy '{spec}' (known: {', '.join(sorted(_REGISTRY))})")
    try:
        policy = _REGISTRY[name](arg or None, scenario)
    except ComllmError:
        raise
    except (ValueError, TypeError) as err:  # a factory that parses its argument with int(), float()...
        detail = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise PolicyError(f"policy '{name}': bad argument {short(arg)} in '{spec}' ({detail})") from None
    if scenario is not None:
        policy.check_scenario(scenario)
    return policy
