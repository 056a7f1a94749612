"""Seeded expansion of a canonical paradigm into the ordered prompts of each run.

Randomness comes from numpy's PCG64 bit generator fed by a ``SeedSequence``
built from the seed and a label naming the purpose ("split", condition,
run, ...). Only raw 64-bit draws are used (Fisher-Yates with rejection
sampling written here), so a schedule does not change when numpy changes
how ``Generator.permutation`` draws, and changing one condition does not
reshuffle the others.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ._errors import ParadigmError, Problem

__all__ = ["build_schedule", "prompt_ids", "SCHEDULE_COLUMNS"]

SCHEDULE_COLUMNS = ("run", "trial", "block", "trial_type", "role", "prompt_id", "prompt",
                    "answer")


def _stream(seed, *labels):
    words = [int.from_bytes(hashlib.sha256(str(lab).encode("utf-8")).digest()[:4], "little")
             for lab in labels]
    return np.random.PCG64(np.random.SeedSequence([int(seed), *words]))


def _below(bits, n):
    """Uniform integer in [0, n) from raw 64-bit draws (rejection sampling)."""
    limit = (1 << 64) - ((1 << 64) % n)
    while True:
        r = int(bits.random_raw())
        if r < limit:
            return r % n


def _permutation(bits, n):
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = _below(bits, i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def prompt_ids(name, n):
    """Stable ids ``name-001`` ... for the ``n`` prompts of a condition (1-based, file order).

    Examples
    --------
    >>> from llmfmri.paradigm._schedule import prompt_ids
    >>> prompt_ids("control", 3)
    ['control-001', 'control-002', 'control-003']
    """
    width = max(3, len(str(n)))
    return [f"{name}-{i + 1:0{width}d}" for i in range(n)]


def _split(spec, seed):
    """Prompt indices per condition per run (0-based run), in presentation order."""
    n_runs, split = spec["runs"]["n"], spec["runs"]["split"]
    need = _need_per_run(spec)
    out = {}
    for c, cond in spec["conditions"].items():
        k = need[c]
        n = len(cond["prompts"])
        if split == "disjoint":
            perm = _permutation(_stream(seed, "split", c), n)
            out[c] = [perm[r * k:(r + 1) * k] for r in range(n_runs)]
        else:
            out[c] = [_permutation(_stream(seed, "split", c, f"run-{r}"), n)[:k]
                      for r in range(n_runs)]
    return out


def _need_per_run(spec):
    design = spec["design"]
    if design["type"] == "event":
        return dict(design["trials_per_condition"])
    need = {c: 0 for c in spec["conditions"]}
    for c in _block_sequence(design, None, 0):
        need[c] += design["prompts_per_block"][c]
    return need


def _block_sequence(design, seed, run):
    """Condition of every block of one run, in order."""
    seq, tasks = design["sequence"], design["tasks"]
    blocks = []
    for cycle in range(design["cycles"]):
        if tasks:
            order = list(tasks)
            if design["task_order"] == "shuffled" and seed is not None:
                perm = _permutation(_stream(seed, "task_order", f"run-{run}", f"cycle-{cycle}"),
                                    len(order))
                order = [order[i] for i in perm]
            for t in order:
                blocks.extend(t if e == "task" else e for e in seq)
        else:
            blocks.extend(seq)
    return blocks


def _event_order(counts, max_consecutive, bits):
    """Random order of condition labels with at most ``max_consecutive`` in a row."""
    labels = [c for c, k in counts.items() for _ in range(k)]
    if max_consecutive is None:
        return [labels[i] for i in _permutation(bits, len(labels))]
    for _ in range(1000):
        left = dict(counts)
        out = []
        while len(out) < len(labels):
            streak = out[-max_consecutive:]
            banned = streak[0] if (len(streak) == max_consecutive
                                   and len(set(streak)) == 1) else None
            options = [c for c, k in left.items() if k > 0 and c != banned]
            if not options:
                break
            # weight by what is left, so the common condition is spread out
            total = sum(left[c] for c in options)
            r = _below(bits, total)
            for c in options:
                r -= left[c]
                if r < 0:
                    break
            out.append(c)
            left[c] -= 1
        if len(out) == len(labels):
            return out
    raise ParadigmError(Problem("<schedule>", None, "design.max_consecutive",
                                f"no order with at most {max_consecutive} trials of one "
                                "condition in a row was found in 1000 tries; raise "
                                "max_consecutive."))


def build_schedule(spec, seed):
    """Expand the canonical ``spec`` into the presentation table (see ``Paradigm.schedule``)."""
    conds = spec["conditions"]
    design = spec["design"]
    ids = {c: prompt_ids(c, len(v["prompts"])) for c, v in conds.items()}
    assigned = _split(spec, seed)
    rows = []
    for r in range(spec["runs"]["n"]):
        if design["type"] == "block":
            cursor = {c: 0 for c in conds}
            trial = 0
            for b, c in enumerate(_block_sequence(design, seed, r)):
                k = design["prompts_per_block"][c]
                for idx in assigned[c][r][cursor[c]:cursor[c] + k]:
                    rows.append((r + 1, trial, b, c, idx))
                    trial += 1
                cursor[c] += k
        else:
            counts = {c: len(assigned[c][r]) for c in conds}
            order = _event_order(counts, design["max_consecutive"],
                                 _stream(seed, "event_order", f"run-{r}"))
            cursor = {c: 0 for c in conds}
            for t, c in enumerate(order):
                rows.append((r + 1, t, t, c, assigned[c][r][cursor[c]]))
                cursor[c] += 1
    table = pd.DataFrame({
        "run": pd.Series([x[0] for x in rows], dtype="int64"),
        "trial": pd.Series([x[1] for x in rows], dtype="int64"),
        "block": pd.Series([x[2] for x in rows], dtype="int64"),
        "trial_type": pd.Series([x[3] for x in rows], dtype=object),
        "role": pd.Series([conds[x[3]]["role"] for x in rows], dtype=object),
        "prompt_id": pd.Series([ids[x[3]][x[4]] for x in rows], dtype=object),
        "prompt": pd.Series([conds[x[3]]["prompts"][x[4]] for x in rows], dtype=object),
        "answer": pd.Series([None if conds[x[3]]["answers"] is None
                             else conds[x[3]]["answers"][x[4]] for x in rows], dtype=object),
    })
    return table
