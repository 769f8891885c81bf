"""Non-learned policies: random, local, greedy (the one-step oracle), round-robin, least-loaded."""

from __future__ import annotations

import numpy as np

from comllm.cost import ESTIMATES, oracle_actions
from comllm.policies.base import Policy, PolicyError, register_policy
from comllm.state import StateBatch


def _no_arg(name: str, arg: str | None) -> None:
    if arg:
        raise PolicyError(f"policy '{name}' takes no argument (got '{name}:{arg}')")


class RandomPolicy(Policy):
    """Uniform over local and every server."""

    name = "random"

    def __init__(self, seed: int | None = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, batch: StateBatch) -> np.ndarray:
        return self.rng.integers(0, batch.n_actions, len(batch))


class LocalPolicy(Policy):
    """Always run locally (puts no load on any server)."""

    name = "local"
    stateless = True

    def act(self, batch: StateBatch) -> np.ndarray:
        return np.zeros(len(batch), dtype=np.int64)


class GreedyPolicy(Policy):
    """The one-step oracle: argmin of the cost model of :mod:`comllm.cost` (ties: local, then lowest id).

    ``greedy`` is the paper's formula; ``greedy:incoming`` adds the Mbit in flight to each
    server to its backlog, ``greedy:incoming,active`` also counts the tasks in flight among
    its active queues; ``greedy:sharing`` does both and prices the server's compute as its
    queues share it (:mod:`comllm.cost`, the *sharing* variant).
    """

    name = "greedy"
    stateless = True

    def __init__(self, incoming: bool = False, incoming_active: bool = False, sharing: bool = False) -> None:
        if sharing and not (incoming and incoming_active):
            raise PolicyError(
                f"greedy: sharing=True prices the fresh view and needs incoming=True and incoming_active=True "
                f"(got incoming={incoming}, incoming_active={incoming_active}; comllm.cost.ESTIMATES['sharing'])"
            )
        self.incoming, self.incoming_active, self.sharing = incoming, incoming_active, sharing
        if sharing:
            self.name = "greedy:sharing"
        elif incoming:
            self.name = "greedy:incoming,active" if incoming_active else "greedy:incoming"

    def act(self, batch: StateBatch) -> np.ndarray:
        return oracle_actions(batch, self.incoming, self.incoming_active, self.sharing)


def _greedy(arg: str | None, sc) -> GreedyPolicy:
    if not arg:
        return GreedyPolicy(**ESTIMATES["paper"])
    if arg in ("incoming", "sharing"):  # each named estimate's flags: one source (comllm.cost.ESTIMATES)
        return GreedyPolicy(**ESTIMATES[arg])
    if arg.replace(" ", "") == "incoming,active":
        return GreedyPolicy(incoming=True, incoming_active=True)
    raise PolicyError(
        f"policy 'greedy' takes no argument, 'incoming', 'incoming,active' or 'sharing' (got 'greedy:{arg}')"
    )


class RoundRobinPolicy(Policy):
    """Offload every task, cycling through servers 1..N in arrival order."""

    name = "round-robin"

    def __init__(self) -> None:
        self.next = 0

    def reset(self, seed: int | None = None) -> None:
        self.next = 0

    def act(self, batch: StateBatch) -> np.ndarray:
        n = batch.n_servers
        out = (self.next + np.arange(len(batch))) % n + 1
        self.next = (self.next + len(batch)) % n
        return out


class LeastLoadedPolicy(Policy):
    """Offload every task to the server whose backlog takes the least CPU time.

    Backlog time of server j = queued Mbit · cycles/bit / (GHz · slot), in slots;
    ties go to the fewest active queues, then the lowest id.
    """

    name = "least-loaded"
    stateless = True

    def act(self, batch: StateBatch) -> np.ndarray:
        backlog = batch.queued * batch.server_cycles_per_bit / 1000.0 / (batch.server_ghz * batch.slot_s[:, None])
        key = backlog + 1e-6 * batch.active  # tie-break on active count
        return np.argmin(key, axis=1) + 1


register_policy("random", "uniformly random action")(lambda arg, sc: RandomPolicy(int(arg) if arg else 0))
register_policy("local", "always compute on the device")(lambda arg, sc: (_no_arg("local", arg), LocalPolicy())[1])
register_policy(
    "greedy",
    "one-step cost oracle; greedy:incoming also counts traffic in flight, greedy:sharing also shares the server",
)(_greedy)
register_policy("round-robin", "offload to servers in turn")(
    lambda arg, sc: (_no_arg("round-robin", arg), RoundRobinPolicy())[1]
)
register_policy("least-loaded", "offload to the server with the least backlog (CPU time)")(
    lambda arg, sc: (_no_arg("least-loaded", arg), LeastLoadedPolicy())[1]
)

HEURISTICS = ("random", "local", "greedy", "round-robin", "least-loaded")


