"""Prompt-safe cross-validation splits (which prompts stand behind each sample)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design import check_events, events_per_frame
from ..exceptions import DataError

__all__ = ["row_prompts", "prompt_components", "purge", "task_contrasts"]


def row_prompts(view, table, by):
    """The set of prompt ids behind each row of a ``summarize_prompts`` table.

    A prompt is identified by its ``prompt_id`` alone (not its run), so a prompt
    shown in two runs is one stimulus. Without a ``prompt_id`` column each row
    is its own stimulus.
    """
    out = []
    for run, rows in table.groupby("run", sort=False):
        ev = check_events(view.events(run))
        n = int(np.asarray(view.frames(run).shape)[0])
        if by == "prompt_id":
            sets = {g: {g} for g in rows[by]}
        elif "prompt_id" not in ev.columns:
            sets = {g: {(run, by, g)} for g in rows[by]}
        else:
            ft = np.arange(n, dtype=float)
            g_lab, _ = events_per_frame(ev, by, ft)
            p_lab, _ = events_per_frame(ev, "prompt_id", ft)
            frame = pd.DataFrame({"g": g_lab, "p": p_lab}).dropna()
            sets = {g: set(f["p"]) for g, f in frame.groupby("g", sort=False)}
        out.append(pd.Series([sets.get(g, set()) for g in rows[by]], index=rows.index))
    return pd.concat(out).reindex(table.index).tolist()


def prompt_components(prompts):
    """Connected components of rows that share a prompt (union-find); one label per row."""
    parent = list(range(len(prompts)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner = {}
    for i, ps in enumerate(prompts):
        for p in ps:
            if p in owner:
                a, b = find(i), find(owner[p])
                if a != b:
                    parent[a] = b
            else:
                owner[p] = i
    return np.array([find(i) for i in range(len(prompts))])


def purge(splits, prompts):
    """Drop from each training set the rows that share a prompt with the test set."""
    out = []
    for train, test in splits:
        seen = set().union(*[prompts[i] for i in test]) if len(test) else set()
        keep = np.array([not (prompts[i] & seen) for i in train], dtype=bool)
        out.append((np.asarray(train)[keep], np.asarray(test)))
    return out


def _name(c):
    return c if str(c).isidentifier() else f"`{c}`"


def task_contrasts(tasks, baseline):
    """dict condition -> contrast from a dict, or from a list of conditions and a baseline."""
    if isinstance(tasks, str):
        tasks = [tasks]
    if hasattr(tasks, "items"):
        out = {str(k): v for k, v in tasks.items()}
    else:
        tasks = [str(t) for t in tasks]
        if baseline is None:
            raise DataError(
                "tasks is a list of conditions, so each network needs a contrast: pass "
                "baseline='control' (contrast 'task - control'), or a dict "
                "{condition: contrast}."
            )
        out = {t: f"{_name(t)} - {_name(baseline)}" for t in tasks}
    if len(out) < 2:
        raise DataError(f"Identification needs at least 2 tasks, but got {list(out)}.")
    return out
