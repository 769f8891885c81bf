"""Upper bounds of the sizes a command accepts, checked before any work starts.

A value above its bound is almost always a typo (``--slots 99999999999999999999``)
and would otherwise run silently until killed or fill the disk; the bounds are
far above every size the README's experiments use. Raising one is an edit here.
"""

from __future__ import annotations

from comllm.errors import ComllmError
from comllm.scenario import MAX_SERVERS

#: scored (or warm-up) slots of one closed-loop episode
MAX_SLOTS = 10_000_000
#: seeds of one evaluation
MAX_SEEDS = 10_000
#: records of one generated data set
MAX_RECORDS = 100_000_000
#: worker processes of a sweep or benchmark
MAX_WORKERS = 1024
#: environment steps of one DRL training run
MAX_STEPS = 1_000_000_000
#: temperature of the llm policy's draws (sample mode, cost mode's cost_temperature)
MAX_TEMPERATURE = 100.0

__all__ = ["LimitError", "MAX_RECORDS", "MAX_SEEDS", "MAX_SERVERS", "MAX_SLOTS", "MAX_STEPS", "MAX_TEMPERATURE", "MAX_WORKERS",
           "check_limit"]


class LimitError(ComllmError, ValueError):
    """A size above its upper bound; the message names the option, the value and the bound."""


def check_limit(option: str, value: int | float | None, most: int | float) -> None:
    """Refuse ``value`` (given by ``option``) above ``most``, in one line."""
    if value is not None and value > most:
        raise LimitError(f"{option} {value} is above the limit of {most:_}")
