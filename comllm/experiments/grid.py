"""The job grid of every closed-loop comparison: policies × scenarios × loads × decision protocols × seeds.

``comllm simulate``, ``comllm sweep``, ``comllm benchmark`` and the pipeline's
evaluation stage build their episodes with :func:`job_grid`, so one
(policy, scenario, overrides, seed) is the same :class:`~comllm.experiments.sweep.Job`
whichever command runs it, and :func:`~comllm.experiments.sweep.aggregate` turns
the results into the same rows.

The nesting is scenario, load, protocol, policy, seed (seed innermost), which is
also the order of the aggregated rows. A load ``q`` adds the scenario override
``arrival_prob=q`` and a protocol ``d`` adds ``decisions=d``, after the common
``overrides``; ``None`` keeps the scenario's own. In a policy spec, ``{n}``
stands for the scenario's server count (``dqn:{n}`` is ``dqn:6`` on paper-6),
and the job keeps the unresolved spec as its label.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence, Union

from comllm.experiments.sweep import Job
from comllm.scenario import Scenario, load_scenario

#: label -> spec, a list of specs (each its own label), or a function of the scenario argument and
#: the loaded scenario giving label -> spec (policies that depend on the scenario, e.g. its trained agents)
Policies = Union[Mapping[str, str], Sequence[str], Callable[[str, Scenario], Mapping[str, str]]]


def resolve_spec(spec: str, scenario: Scenario) -> str:
    """``spec`` with ``{n}`` replaced by the scenario's server count."""
    return spec.replace("{n}", str(scenario.n_servers))


def axis_overrides(
    overrides: Sequence[str] = (), load: float | None = None, decisions: str | None = None
) -> tuple[str, ...]:
    """The scenario overrides of one grid point: the common ones, then its load and protocol."""
    return (
        tuple(overrides)
        + ((f"arrival_prob={load}",) if load is not None else ())
        + ((f"decisions={decisions}",) if decisions else ())
    )


def job_grid(
    policies: Policies,
    scenarios: Sequence[str],
    seeds: int | Sequence[int],
    *,
    slots: int,
    warmup: int,
    loads: Sequence[float | None] = (None,),
    decisions: Sequence[str | None] = (None,),
    overrides: Sequence[str] = (),
    keep_latencies: bool | Callable[[str, int], bool] = False,
) -> list[Job]:
    """Every job of the grid, in the module's nesting order.

    ``seeds`` is a count (seeds 0..seeds-1) or the seeds themselves;
    ``keep_latencies`` is a flag or a function of (scenario argument, seed).
    Each scenario is loaded once with ``overrides`` (an invalid one fails here, before
    any episode runs).
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    jobs: list[Job] = []
    for sc in scenarios:
        base = load_scenario(sc, list(overrides))
        if callable(policies):
            pols = dict(policies(sc, base))
        elif isinstance(policies, Mapping):
            pols = dict(policies)
        else:
            pols = {p: p for p in policies}
        for q in loads:
            for d in decisions:
                ovr = axis_overrides(overrides, q, d)
                for label, spec in pols.items():
                    for s in seed_list:
                        keep = keep_latencies(sc, s) if callable(keep_latencies) else keep_latencies
                        jobs.append(Job(policy=resolve_spec(spec, base), scenario=sc, seed=s, slots=slots,
                                        warmup=warmup, overrides=ovr, label=label, keep_latencies=keep))  # fmt: skip
    return jobs


def check_jobs(jobs: Sequence[Job]) -> None:
    """Fail fast, before any worker starts: load every scenario variant and build every policy once.

    Each distinct policy spec is built on each scenario it runs on (with the overrides
    of its first job there); the error is the scenario's or policy's own one-line error.
    """
    from comllm.policies import make_policy

    loaded: dict[tuple[str, tuple[str, ...]], Scenario] = {}
    for job in jobs:
        if (job.scenario, job.overrides) not in loaded:
            loaded[(job.scenario, job.overrides)] = load_scenario(job.scenario, list(job.overrides))
    built: set[tuple[str, str]] = set()
    for job in jobs:
        if (job.policy, job.scenario) not in built:
            built.add((job.policy, job.scenario))
            make_policy(job.policy, loaded[(job.scenario, job.overrides)])


def axis_label(scenario: str, overrides: Sequence[str], load: bool = True, decisions: bool = True) -> str:
    """How the sweep names a grid point: ``paper-6 (p=0.3, sequential)``.

    ``load`` and ``decisions`` say which axes the sweep varies; each shows the last
    ``arrival_prob`` or ``decisions`` override (a ``--set`` the sweep does not vary as
    an axis is in the row's ``overrides`` only, as in ``simulate``).
    """
    extra = [f"p={o.partition('=')[2]}" for o in overrides if o.startswith("arrival_prob=")][-1:] if load else []
    extra += [o.partition("=")[2] for o in overrides if o.startswith("decisions=")][-1:] if decisions else []
    return f"{scenario} ({', '.join(extra)})" if extra else scenario
