"""The LACS scoring of an iteration's recorded states, in parallel: local worker processes or Ray tasks.

:func:`score_states` is what :func:`comllm.lacs.improve.score` calls. The states are split
into contiguous chunks (so the results come back in the states' order); each chunk is scored
by :func:`score_chunk`, the same :func:`~comllm.lacs.lookahead.lacs_evaluate_batch` call the
in-process path makes on all of them, and the chunks' scores are concatenated. A state's
rollouts draw from ``default_rng([seed, t, device])`` (the iteration's seed, the state's slot
and device; :mod:`comllm.lacs.lookahead`) and every (state, action) pair is rolled forward on
its own, so a state's scores do not depend on which chunk, process or machine scores it: the
parallel scores are bit-identical to the in-process ones.

* ``workers`` (``--workers``): ``1`` scores in this process, as :func:`score_chunk` on all
  states; ``N > 1`` in a pool of ``N`` local worker processes (``0``: one per CPU core).
  The pool is started once (``spawn``: a fresh interpreter, safe whatever threads this process
  runs) and kept for the later iterations; :func:`shutdown` (also run at exit) closes it.
  As with any ``spawn`` pool, a script that calls this needs ``if __name__ == "__main__":``.
* ``ray`` (``--ray ADDRESS``): chunks are Ray tasks (one CPU each) on the cluster at that
  address, checked first by :func:`comllm.experiments.sweep.check_ray_address` (one line, fast,
  where nothing listens), the sweep's convention; ``workers`` then sizes the chunks as it does
  for local processes (``0``: the cluster's CPUs).

Either way the states go out in ``CHUNKS_PER_WORKER`` chunks per worker.

Each worker process or Ray task runs numba with one thread (no oversubscription of the cores).
What crosses a process boundary is what :class:`~comllm.lacs.improve.Collected` holds for
scoring: the snapshots (the scenario, the slot and numpy arrays), the devices, the fixed
actions (dicts of ints), the :class:`~comllm.lacs.lookahead.LacsSettings`, and back the
``(states, N + 1)`` score arrays.
"""

from __future__ import annotations

import atexit
import os
from concurrent.futures import Executor
from typing import Any, Sequence

import numpy as np

from comllm.errors import ComllmError

#: chunks per worker: contiguous chunks vary in cost, a few per worker even out the load
CHUNKS_PER_WORKER = 4

_POOL: tuple[int, Executor] | None = None  # (workers, the pool) kept between iterations


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


def score_chunk(
    snapshots: Sequence[Any], devices: Sequence[int], fixed: Sequence[dict[int, int]], settings: Any,
    parts: bool = False,
) -> np.ndarray:  # fmt: skip
    """LACS score of every action of each state, ``(S, N + 1)``, slots: the in-process scoring. With
    ``parts``: ``(S, 2, N + 1)``, each action's score and its ``current`` part (the task's own latency)."""
    from comllm.lacs.lookahead import lacs_evaluate_batch

    res = lacs_evaluate_batch(list(snapshots), list(devices), settings, None, list(fixed))
    return np.stack([np.stack([r.score, r.current]) if parts else r.score for r in res])


def _one_thread() -> None:
    """A worker is one process (or Ray task) on one core: numba runs its parallel loops on one thread."""
    import numba

    numba.set_num_threads(1)


def _init_worker() -> None:
    # not NUMBA_NUM_THREADS: numba is imported by now (unpickling this function imports comllm.lacs),
    # and numba refuses a changed value once its threads run (it rereads the environment when it compiles)
    os.environ["OMP_NUM_THREADS"] = "1"
    _one_thread()


def _worker_chunk(
    snapshots: Sequence[Any], devices: Sequence[int], fixed: Sequence[dict[int, int]], settings: Any,
    parts: bool = False,
) -> np.ndarray:  # fmt: skip
    _one_thread()  # a Ray task may run in a worker that has not been set up
    return score_chunk(snapshots, devices, fixed, settings, parts)


def chunk_bounds(n: int, chunks: int) -> list[tuple[int, int]]:
    """``chunks`` contiguous ``(lo, hi)`` ranges covering ``0..n`` (sizes differ by at most one; none empty)."""
    chunks = max(1, min(chunks, n))
    edges = [n * k // chunks for k in range(chunks + 1)]
    return [(edges[k], edges[k + 1]) for k in range(chunks)]


def connect_ray(address: str) -> Any:
    """The ``ray`` module, joined to the cluster at ``address`` (checked first, errors in one line naming ``--ray``).

    A process already connected to Ray keeps its connection.
    """
    from comllm.experiments.sweep import check_ray_address

    try:
        import ray
    except ImportError:
        raise ComllmError("--ray needs the optional dependency: pip install 'comllm[ray]'") from None
    check_ray_address(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ComllmError(f"--ray '{address}': cannot join the cluster ({line})") from None
    return ray


def _pool(workers: int) -> Executor:
    global _POOL
    if _POOL is None or _POOL[0] != workers:
        shutdown()
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        _POOL = (workers, ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker))
    return _POOL[1]


def shutdown() -> None:
    """Close the kept worker pool, if any."""
    global _POOL
    if _POOL is not None:
        pool, _POOL = _POOL[1], None
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown)


def score_states(
    snapshots: Sequence[Any],
    devices: Sequence[int],
    fixed: Sequence[dict[int, int]],
    settings: Any,
    workers: int = 1,
    ray: str | None = None,
    parts: bool = False,
) -> np.ndarray:
    """:func:`score_chunk` of all states, in chunks on ``workers`` processes or as Ray tasks (module docstring)."""
    n = len(devices)
    ray_ = connect_ray(ray) if ray is not None else None
    if workers == 0:
        workers = cpu_cores() if ray_ is None else max(int(ray_.cluster_resources().get("CPU", 1)), 1)
    if n == 0 or (ray_ is None and (workers <= 1 or n <= 1)):
        return score_chunk(snapshots, devices, fixed, settings, parts)
    args = [
        (list(snapshots[lo:hi]), list(devices[lo:hi]), list(fixed[lo:hi]), settings, parts)
        for lo, hi in chunk_bounds(n, workers * CHUNKS_PER_WORKER)
    ]
    if ray_ is not None:
        remote = ray_.remote(num_cpus=1)(_worker_chunk)
        parts = ray_.get([remote.remote(*a) for a in args])
    else:
        from concurrent.futures.process import BrokenProcessPool

        pool = _pool(workers)
        try:
            parts = [f.result() for f in [pool.submit(_worker_chunk, *a) for a in args]]
        except BrokenProcessPool:
            shutdown()
            raise
    return np.concatenate(parts)
