"""Sweeps: policies × scenarios × loads × seeds, run in parallel worker processes or on Ray.

One :class:`Job` is one closed-loop episode (one policy, one scenario with its
overrides, one seed); :func:`comllm.experiments.grid.job_grid` builds the grid of
them. Jobs are independent, so they run in a process pool on one machine
(``workers``) or as Ray tasks on an existing cluster (``ray_address``); either way
the results come back in job order and are aggregated over seeds by
:func:`aggregate`, the one aggregation of closed-loop results
(:func:`comllm.evaluate.metrics.aggregate_seeds`), which ``simulate`` uses too.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from comllm.errors import ComllmError

if TYPE_CHECKING:
    from comllm.policies.base import Policy
    from comllm.scenario import Scenario


@dataclass(frozen=True)
class Job:
    """One closed-loop episode. ``overrides`` are scenario ``key=value`` strings."""

    policy: str
    scenario: str
    seed: int = 0
    slots: int = 2000
    warmup: int = 200
    overrides: tuple[str, ...] = ()
    label: str = ""  # how reports name the policy (default: the spec)
    keep_latencies: bool = False

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.label or self.policy, self.scenario, self.overrides)


@dataclass
class JobResult:
    job: Job
    metrics: dict[str, Any]  # EpisodeMetrics fields (latencies as a list when kept)
    policy_stats: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


def run_job(
    job: Job,
    policy: "Policy | None" = None,
    scenario: "Scenario | None" = None,
    on_slot: Callable[[], None] | None = None,
) -> JobResult:
    """Run one episode (in whatever process calls it).

    ``policy`` and ``scenario``, when given, are used instead of building them from
    the job's spec (``simulate`` builds each policy once for all its seeds); they
    must be what the spec builds. ``on_slot`` is called after every slot.
    """
    import time

    from comllm.evaluate.closed_loop import run_episode

    t0 = time.perf_counter()
    if scenario is None:
        from comllm.scenario import load_scenario

        scenario = load_scenario(job.scenario, list(job.overrides))
    if policy is None:
        from comllm.policies import make_policy

        policy = make_policy(job.policy, scenario)
    ep = run_episode(
        scenario, policy, job.slots, job.seed, warmup=job.warmup, keep_latencies=job.keep_latencies, on_slot=on_slot
    )
    metrics = asdict(ep)
    if ep.latencies is not None:
        metrics["latencies"] = ep.latencies.astype(np.float32).tolist()
    return JobResult(job=job, metrics=metrics, policy_stats=dict(policy.stats), wall_s=time.perf_counter() - t0)


def quiet_transformers() -> None:
    """No weight-loading progress bars in evaluation logs (one per policy load otherwise)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def _init_worker() -> None:
    # each worker is one process on one core: keep BLAS/torch from oversubscribing
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    quiet_transformers()


def run_sweep(
    jobs: Sequence[Job],
    workers: int = 2,
    ray_address: str | None = None,
    on_done: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run ``jobs``; results in job order. ``workers=1`` runs in this process."""
    jobs = list(jobs)
    if ray_address is not None:
        return _run_ray(jobs, ray_address, on_done)
    if workers <= 1 or len(jobs) <= 1:
        out = []
        for job in jobs:
            res = run_job(job)
            if on_done:
                on_done(res)
            out.append(res)
        return out
    results: list[JobResult | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
        from concurrent.futures import as_completed

        for fut in as_completed(futures):
            res = fut.result()
            results[futures[fut]] = res
            if on_done:
                on_done(res)
    return [r for r in results if r is not None]


#: seconds to wait for a Ray head to accept a connection
RAY_CONNECT_TIMEOUT_S = 10.0


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Refuse a ``--ray HOST:PORT`` where nothing accepts a connection within ``timeout`` seconds.

    ``ray.init`` waits a long time for a head that is not there; this check fails
    fast, in one line. ``auto`` and ``local`` are left to Ray.
    """
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ComllmError(f"--ray '{address}' is not HOST:PORT (or ray://HOST:PORT, auto)")
    host = host.strip("[]") or "127.0.0.1"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        why = "timed out" if isinstance(err, socket.timeout) else (err.strerror or str(err))
        raise ComllmError(
            f"--ray '{address}': nothing accepts a connection at {host}:{port} within {timeout:g} s ({why}); "
            f"start a head there with `ray start --head --port={port}`"
        ) from None


def _run_ray(jobs: list[Job], address: str, on_done: Callable[[JobResult], None] | None) -> list[JobResult]:
    try:
        import ray
    except ImportError:
        raise ComllmError("--ray needs the optional dependency: pip install 'comllm[ray]'") from None
    if not ray.is_initialized():
        check_ray_address(address)
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ComllmError(f"--ray '{address}': cannot join the cluster ({line})") from None
    remote = ray.remote(num_cpus=1)(run_job)
    refs = [remote.remote(job) for job in jobs]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[JobResult | None] = [None] * len(jobs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            res = ray.get(ref)
            results[index[ref]] = res
            if on_done:
                on_done(res)
    return [r for r in results if r is not None]


def aggregate(results: Iterable[JobResult]) -> list[dict[str, Any]]:
    """One row per (policy label, scenario, overrides), in first-job order: mean and 95 % CI over seeds.

    The rows of :func:`comllm.evaluate.metrics.aggregate_seeds` (keys
    :data:`~comllm.evaluate.metrics.ROW_KEYS`); ``wall_s`` is the episodes' total.
    """
    from comllm.evaluate.metrics import aggregate_seeds

    groups: dict[tuple, list[JobResult]] = {}
    for r in results:
        groups.setdefault(r.job.key, []).append(r)
    return [
        aggregate_seeds(
            [r.metrics for r in rs],
            policy=label,
            scenario=scenario,
            overrides=overrides,
            slots=rs[0].job.slots,
            warmup=rs[0].job.warmup,
            policy_stats=[r.policy_stats for r in rs],
            wall_s=float(sum(r.wall_s for r in rs)),
        )
        for (label, scenario, overrides), rs in groups.items()
    ]


class EpisodeCache:
    """Finished episodes kept as JSON files in a folder, one per job, so a rerun skips them.

    A file is named by a digest of its job (every field) and records a digest of the code
    of every ``comllm`` module the process had loaded, the command line, reports and
    experiment orchestration aside (each module's syntax tree, docstrings and comments aside). An entry is reused only while each of those modules is unchanged:
    editing the simulator drops every entry, editing a training module none. Files are
    written atomically; one that does not read back is ignored (and recomputed).
    """

    def __init__(self, folder: "str | os.PathLike[str]") -> None:
        from pathlib import Path

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._digests: dict[str, str] = {}

    def _path(self, job: Job) -> "Any":
        import hashlib
        import json

        key = json.dumps(asdict(job), sort_keys=True)
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def _digest(self, module_file: str) -> str:
        if module_file not in self._digests:
            self._digests[module_file] = _code_digest(module_file)
        return self._digests[module_file]

    def get(self, job: Job) -> JobResult | None:
        import json

        path = self._path(job)
        try:
            d = json.loads(path.read_text())
            if d["job"] != json.loads(json.dumps(asdict(job))):
                return None
            if any(self._digest(f) != h for f, h in d["code"].items()):
                return None
            return JobResult(job=job, metrics=d["metrics"], policy_stats=d["policy_stats"], wall_s=float(d["wall_s"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, result: JobResult) -> None:
        import sys

        from comllm.checkpointing import atomic_write_json

        root = _package_root()
        files = sorted(
            str(__import__("pathlib").Path(m.__file__).resolve().relative_to(root))
            for name, m in list(sys.modules.items())
            if name.split(".")[0] == "comllm" and getattr(m, "__file__", None)
            and name.split(".")[1:2] not in (["cli"], ["report"], ["experiments"])  # orchestration, not results
        )  # fmt: skip
        atomic_write_json(
            self._path(result.job),
            {"job": asdict(result.job), "metrics": result.metrics, "policy_stats": result.policy_stats,
             "wall_s": result.wall_s, "code": {f: self._digest(f) for f in files}},
        )  # fmt: skip


def _package_root() -> "Any":
    from pathlib import Path

    return Path(__file__).resolve().parent.parent.parent


def _code_digest(module_file: str) -> str:
    """A digest of one module's code (relative to the package root): its syntax tree without
    docstrings, so documentation and comment edits keep the cache; "" if it is gone."""
    import ast
    import hashlib

    path = _package_root() / module_file
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return ""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant
        ) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]
