"""Events tables in frames: per frame, per prompt, per block."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["make_events", "collapse_events", "EVENT_COLUMNS", "PROMPT_COLUMNS",
           "TOKEN_COLUMNS", "EVENT_DTYPES", "MINIMAL_EVENT_COLUMNS"]

#: columns of a per-frame events table that come from the prompt's schedule row
PROMPT_COLUMNS = ("trial_type", "block", "run", "trial", "prompt_id", "role")
#: columns that describe the frame's token (filled in by the recorder)
TOKEN_COLUMNS = ("frame_kind", "position", "token", "token_id", "logprob", "response")
#: the one per-frame events schema: what the recorder writes and :func:`make_events` returns
EVENT_COLUMNS = ("onset", "duration") + PROMPT_COLUMNS + TOKEN_COLUMNS
#: columns that must stay text when an events TSV is read back (even if they look numeric)
EVENT_DTYPES = {"trial_type": str, "prompt_id": str, "role": str, "frame_kind": str,
                "token": str, "response": str}
#: what :func:`collapse_events` needs (older recordings have no ``role`` column)
MINIMAL_EVENT_COLUMNS = ("onset", "duration", "trial_type", "block", "run", "prompt_id")

_TOKEN_DEFAULTS = {"frame_kind": None, "position": -1, "token": "", "token_id": -1,
                   "logprob": np.nan, "response": ""}


def make_events(schedule, n_frames, *, tokens=None, first_onset=0):
    """Per-frame events table from a schedule and the frames each prompt produced.

    This is the one per-frame events schema (:data:`EVENT_COLUMNS`): the
    recorder builds its events with this function, and the design reads them.

    Parameters
    ----------
    schedule : pandas.DataFrame
        Rows of :meth:`Paradigm.schedule` (all runs or some), in presentation order.
    n_frames : sequence of int, length n_rows
        Frames recorded for each row (e.g. generated tokens; 1 for pooled frames).
        Zero is allowed (a prompt that produced no frame gets no row).
    tokens : mapping of str to sequence, optional
        Per-frame values of the :data:`TOKEN_COLUMNS` (``frame_kind``,
        ``position``, ``token``, ``token_id``, ``logprob``, ``response``), each
        of length ``sum(n_frames)``; missing ones are left empty (``n/a``).
    first_onset : int, default=0
        Onset of the first frame of each run (a recorder appending a batch to
        a run passes the frames already written).

    Returns
    -------
    events : pandas.DataFrame
        One row per frame with the columns of :data:`EVENT_COLUMNS`:
        ``onset`` (frame index within its run, in frames), ``duration``
        (1 frame), ``trial_type``, ``block``, ``run``, ``trial``,
        ``prompt_id``, ``role`` and the token columns.

    Examples
    --------
    >>> import pandas as pd
    >>> from llmfmri.paradigm import make_events
    >>> sched = pd.DataFrame({"run": [1, 1], "trial": [0, 1], "block": [0, 1],
    ...                       "trial_type": ["control", "task1"], "role": ["control", "task"],
    ...                       "prompt_id": ["control-001", "task1-001"]})
    >>> make_events(sched, [2, 1])[["onset", "duration", "trial_type", "prompt_id"]]
       onset  duration trial_type    prompt_id
    0      0         1    control  control-001
    1      1         1    control  control-001
    2      2         1      task1    task1-001
    """
    n_frames = np.asarray(n_frames)
    if n_frames.ndim != 1 or len(n_frames) != len(schedule):
        raise ValueError(f"n_frames must have one entry per schedule row ({len(schedule)}), "
                         f"but has shape {n_frames.shape}.")
    if len(n_frames) and (not np.issubdtype(n_frames.dtype, np.integer) or n_frames.min() < 0):
        raise ValueError(f"n_frames must hold whole numbers >= 0, but got {n_frames[:5]!r}...")
    missing = [c for c in ("run", "trial", "block", "trial_type", "role", "prompt_id")
               if c not in schedule.columns]
    if missing:
        raise ValueError(f"schedule lacks the column(s) {missing}; pass rows of "
                         "Paradigm.schedule().")
    total = int(n_frames.sum())
    tokens = dict(tokens or {})
    unknown = sorted(set(tokens) - set(TOKEN_COLUMNS))
    if unknown:
        from .._utils import did_you_mean

        raise ValueError(f"tokens has unknown column(s) {unknown}; the token columns are "
                         f"{list(TOKEN_COLUMNS)}." + did_you_mean(unknown[0], TOKEN_COLUMNS))
    rep = np.repeat(np.arange(len(schedule)), n_frames)
    rows = schedule.iloc[rep].reset_index(drop=True)
    run = rows["run"].to_numpy()
    onset = np.zeros(total, dtype=np.int64)
    for r in pd.unique(run):
        mask = run == r
        onset[mask] = int(first_onset) + np.arange(mask.sum())
    out = {
        "onset": onset,
        "duration": np.ones(total, dtype=np.int64),
        "trial_type": rows["trial_type"].to_numpy(dtype=object),
        "block": rows["block"].to_numpy(dtype=np.int64),
        "run": run.astype(np.int64),
        "trial": rows["trial"].to_numpy(dtype=np.int64),
        "prompt_id": rows["prompt_id"].to_numpy(dtype=object),
        "role": rows["role"].to_numpy(dtype=object),
    }
    for col in TOKEN_COLUMNS:
        if col in tokens:
            values = np.asarray(tokens[col], dtype=object if col in EVENT_DTYPES else None)
            if len(values) != total:
                raise ValueError(f"tokens[{col!r}] has {len(values)} values for {total} frames.")
            out[col] = values
        else:
            out[col] = np.full(total, _TOKEN_DEFAULTS[col],
                               dtype=object if col in EVENT_DTYPES else None)
    return pd.DataFrame(out, columns=list(EVENT_COLUMNS))


def collapse_events(events, by="prompt"):
    """Merge consecutive frames of one prompt (or one block) into one event.

    Parameters
    ----------
    events : pandas.DataFrame
        Per-frame events (as the recorder writes): at least ``onset``,
        ``duration``, ``trial_type``, ``block``, ``run`` and ``prompt_id``,
        one row per frame, onsets in frames.
    by : {"prompt", "block"}
        Merge frames of the same prompt (``run``, ``prompt_id``) or of the same
        block (``run``, ``block``), as long as they are consecutive.

    Returns
    -------
    events : pandas.DataFrame
        One row per prompt (or block): ``onset`` is the first frame, ``duration``
        the summed durations (the frame count when each frame lasts 1),
        ``trial_type``, ``block``, ``run``, ``prompt_id`` (for ``by="prompt"``)
        or ``n_prompts`` (for ``by="block"``), plus every other column that is
        constant within each merged event (per-token columns are dropped).
        It is the table nilearn's ``make_first_level_design_matrix`` accepts
        (drop ``run``/``block`` or pass one run at a time).

    Examples
    --------
    >>> import pandas as pd
    >>> from llmfmri.paradigm import collapse_events
    >>> frames = pd.DataFrame({"onset": [0, 1, 2, 3], "duration": 1,
    ...                        "trial_type": ["control", "control", "task1", "task1"],
    ...                        "block": [0, 0, 1, 1], "run": 1,
    ...                        "prompt_id": ["control-001", "control-002",
    ...                                      "task1-001", "task1-001"],
    ...                        "token": ["a", "b", "c", "d"]})
    >>> collapse_events(frames, by="block")
       onset  duration trial_type  block  run  n_prompts
    0      0         2    control      0    1          2
    1      2         2      task1      1    1          1
    """
    from .._utils import check_option

    check_option("by", by, ("prompt", "block"))
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events must be a pandas DataFrame, but got {type(events).__name__}.")
    missing = [c for c in MINIMAL_EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events lacks the column(s) {missing}; expected at least "
                         f"{list(MINIMAL_EVENT_COLUMNS)} (one row per frame).")
    ev = events.sort_values(["run", "onset"], kind="stable").reset_index(drop=True)
    key = ["run", "prompt_id"] if by == "prompt" else ["run", "block"]
    if len(ev) == 0:
        cols = list(MINIMAL_EVENT_COLUMNS) if by == "prompt" else [
            c for c in MINIMAL_EVENT_COLUMNS if c != "prompt_id"] + ["n_prompts"]
        return pd.DataFrame({c: pd.Series(dtype=ev[c].dtype if c in ev else "int64")
                             for c in cols})
    changed = np.zeros(len(ev), dtype=bool)
    changed[0] = True
    for k in key:
        values = ev[k].to_numpy()
        changed[1:] |= values[1:] != values[:-1]
    group = np.cumsum(changed) - 1
    grouped = ev.groupby(group, sort=False)
    out = pd.DataFrame({
        "onset": grouped["onset"].first().to_numpy(),
        "duration": grouped["duration"].sum().to_numpy(),
    })
    keep = ["trial_type", "block", "run"] + (["prompt_id"] if by == "prompt" else [])
    for c in keep:
        out[c] = grouped[c].first().to_numpy()
    if by == "block":
        out["n_prompts"] = grouped["prompt_id"].nunique().to_numpy()
    skip = set(MINIMAL_EVENT_COLUMNS) | {"trial", "frame", "n_prompts"} | (
        {"prompt_id"} if by == "block" else set())
    for c in ev.columns:
        if c in skip:
            continue
        try:
            constant = bool((grouped[c].nunique(dropna=False) <= 1).all())
        except TypeError:  # unhashable values
            continue
        if constant:
            out[c] = grouped[c].first().to_numpy()
    if by == "prompt" and "trial" in ev.columns:
        if bool((grouped["trial"].nunique() <= 1).all()):
            out.insert(6, "trial", grouped["trial"].first().to_numpy())
    return out
