"""Paradigms: YAML block and event designs, validated, expanded into schedules.

A paradigm file says which prompts a model reads (conditions), in what order
(a block or an event design, over runs with disjoint prompts), how it
generates, and which token steps become frames. :func:`load_paradigm` checks
it and reports every problem with its file, line and field path;
:meth:`Paradigm.schedule` expands it, reproducibly, into the prompts of each
run; :func:`make_events` and :func:`collapse_events` turn frames into the
events table that design matrices are built from.

This subpackage imports neither torch nor matplotlib.

Examples
--------
>>> from llmfmri.paradigm import load_paradigm
>>> p = load_paradigm({"schema_version": 1, "name": "demo",
...     "conditions": {"control": {"role": "control", "prompts": ["Tea is", "Rain is"]},
...                    "maths": {"role": "task", "prompts": ["2 + 2 =", "3 + 5 ="]}},
...     "design": {"type": "block", "sequence": ["control", "maths", "control"],
...                "prompts_per_block": 1},
...     "runs": {"n": 1, "split": "disjoint"}})
>>> p.schedule()["trial_type"].tolist()
['control', 'maths', 'control']
"""

from ._errors import ParadigmError, Problem
from ._events import (EVENT_COLUMNS, EVENT_DTYPES, PROMPT_COLUMNS, TOKEN_COLUMNS, collapse_events,
                      make_events)
from ._paradigm import Condition, Generation, Paradigm, library_paradigms, load_paradigm
from ._schema import SCHEMA_VERSION

__all__ = [
    "load_paradigm",
    "Paradigm",
    "ParadigmError",
    "Problem",
    "Condition",
    "Generation",
    "collapse_events",
    "make_events",
    "EVENT_COLUMNS",
    "EVENT_DTYPES",
    "PROMPT_COLUMNS",
    "TOKEN_COLUMNS",
    "library_paradigms",
    "SCHEMA_VERSION",
]
