"""Behaviour scored from what was recorded: accuracy against gold answers, perplexity (no torch)."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

from .._utils import check_fraction, check_positive_int, check_random_state
from ..exceptions import DataError

__all__ = ["match_answer", "score_recording", "accuracy_table", "perplexity_table",
           "wilson_interval", "bootstrap_perplexity", "SCORE_COLUMNS"]

#: Columns of a per-item score table (``score_recording``, ``score_texts``, ``score_answers``).
SCORE_COLUMNS = ("run", "prompt_id", "trial_type", "response", "answer", "correct", "n_tokens",
                 "nll", "n_frames")


def _normalise(text):
    text = unicodedata.normalize("NFKC", str(text)).casefold().strip()
    return re.sub(r"\s+", " ", text)


def match_answer(response, answer):
    """Whether a generated response gives the gold answer.

    Both are normalised (Unicode NFKC, case-folded, surrounding whitespace
    removed, inner whitespace collapsed). The response is correct when it
    equals the answer or starts with it followed by a character that is not a
    letter or digit: ``" Paris."`` matches ``"Paris"``; ``" 125"`` does not
    match ``"12"``; ``"True"`` matches ``"true"``.

    Examples
    --------
    >>> from llmfmri.lesions import match_answer
    >>> match_answer(" Paris, of course", "Paris"), match_answer(" 125", "12")
    (True, False)
    """
    r, a = _normalise(response), _normalise(answer)
    if not a:
        raise DataError("A gold answer is empty; every answer needs some text.")
    if not r.startswith(a):
        return False
    return len(r) == len(a) or not r[len(a)].isalnum()


def _answers(paradigm):
    sched = paradigm.schedule()
    if "answer" not in sched.columns:
        return {}
    rows = zip(sched["run"], sched["prompt_id"], sched["answer"])
    return {(int(r), str(p)): a for r, p, a in rows if a is not None}


def score_recording(recording, *, paradigm=None, runs=None, frame_kind=None):
    """One row per prompt of a recording: its response, gold answer, correctness and NLL.

    Reads only the events (no frames, no torch): the per-frame ``response``
    (the generated text of the prompt) and ``logprob`` columns.

    Parameters
    ----------
    recording : Recording
    paradigm : Paradigm or str, optional
        Where the gold answers come from (``Condition.answers`` / the
        schedule's ``answer`` column); default: the paradigm saved with the
        recording.
    runs : list of int, optional
    frame_kind : {"prompt", "generated"}, optional
        Sum the log-probabilities of these frames only (default: every frame
        with one). ``"prompt"`` frames give the likelihood of the prompt text
        (perplexity; ``frames: prompt``), ``"generated"`` that of the model's
        own continuation.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCORE_COLUMNS`: ``run, prompt_id, trial_type,
        response, answer`` (None without gold answers), ``correct`` (float
        1/0, NaN without an answer), ``n_tokens`` (frames with a log-prob),
        ``nll`` (minus their sum, nats), ``n_frames``.
    """
    from ..paradigm import Paradigm, load_paradigm

    if paradigm is None:
        path = getattr(recording, "paradigm_path", None)
        if path is None or not path.is_file():
            raise DataError("The recording has no saved paradigm.yaml; pass paradigm=.")
        paradigm = load_paradigm(path)
    elif not isinstance(paradigm, Paradigm):
        paradigm = load_paradigm(paradigm)
    answers = _answers(paradigm)
    runs = list(recording.runs) if runs is None else list(runs)
    rows = []
    for run in runs:
        ev = recording.events(run)
        if "response" not in ev.columns or "logprob" not in ev.columns:
            raise DataError(
                f"The events of run {run} have no 'response'/'logprob' columns (recorded with "
                "an older llmfmri?); record again to score behaviour."
            )
        lp = pd.to_numeric(ev["logprob"], errors="coerce")
        if frame_kind is not None:
            lp = lp.where(ev["frame_kind"].astype(str) == frame_kind)
        ev = ev.assign(_lp=lp)
        for pid, g in ev.groupby("prompt_id", sort=False):
            finite = g["_lp"].dropna()
            answer = answers.get((int(run), str(pid)))
            response = g["response"].iloc[0]
            response = "" if response is None or (isinstance(response, float)
                                                  and np.isnan(response)) else str(response)
            rows.append({
                "run": int(run), "prompt_id": str(pid), "trial_type": str(g["trial_type"].iloc[0]),
                "response": response, "answer": answer,
                "correct": float(match_answer(response, answer)) if answer is not None
                else np.nan,
                "n_tokens": int(finite.size), "nll": float(-finite.sum()),
                "n_frames": int(len(g)),
            })
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def wilson_interval(k, n, confidence=0.95):
    """Wilson score interval of a proportion ``k / n`` (Wilson 1927).

    Returns
    -------
    (low, high) : tuple of float
        NaN for ``n == 0``.

    Examples
    --------
    >>> from llmfmri.lesions import wilson_interval
    >>> [round(x, 3) for x in wilson_interval(8, 10)]
    [0.49, 0.943]
    """
    from scipy import stats

    n = int(n)
    if n == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_perplexity(nll, n_tokens, *, n_boot=2000, confidence=0.95, random_state=0):
    """Percentile bootstrap interval of ``exp(sum nll / sum tokens)``, resampling items.

    Items (texts, prompts) are the sampling unit: tokens of one text are not
    independent. Returns ``(low, high)``.
    """
    nll = np.asarray(nll, dtype=np.float64)
    tok = np.asarray(n_tokens, dtype=np.float64)
    if nll.size == 0 or tok.sum() == 0:
        return float("nan"), float("nan")
    rng = check_random_state(random_state)
    idx = rng.integers(0, nll.size, size=(int(n_boot), nll.size))
    tot = tok[idx].sum(axis=1)
    ratio = np.where(tot > 0, nll[idx].sum(axis=1) / np.maximum(tot, 1e-300), np.nan)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(ratio, [alpha, 1 - alpha])
    return float(np.exp(low)), float(np.exp(high))


def _groups(scores, by):
    if by is None:
        return [("all", scores)]
    by = [by] if isinstance(by, str) else list(by)
    missing = [b for b in by if b not in scores.columns]
    if missing:
        raise DataError(f"scores have no column {missing[0]!r}; columns are "
                        f"{list(scores.columns)}.")
    return list(scores.groupby(by if len(by) > 1 else by[0], sort=False))


def accuracy_table(scores, *, by="trial_type", confidence=0.95):
    """Accuracy per group of items, with Wilson intervals over items.

    Parameters
    ----------
    scores : DataFrame
        Per-item scores with a ``correct`` column (items without a gold
        answer, NaN, are left out).
    by : str, list of str or None, default="trial_type"
    confidence : float, default=0.95

    Returns
    -------
    pandas.DataFrame
        ``<by>, n_items, n_correct, accuracy, ci_low, ci_high, ci_method``
        (``"wilson"``).
    """
    confidence = check_fraction("confidence", confidence, inclusive=(False, False))
    rows = []
    for key, g in _groups(scores, by):
        c = pd.to_numeric(g["correct"], errors="coerce").dropna()
        if c.empty:
            continue
        k, n = int(c.sum()), int(c.size)
        low, high = wilson_interval(k, n, confidence)
        row = dict(zip([by] if isinstance(by, str) else (by or ["group"]),
                       key if isinstance(key, tuple) else (key,)))
        row.update(n_items=n, n_correct=k, accuracy=k / n, ci_low=low, ci_high=high,
                   ci_method="wilson")
        rows.append(row)
    return pd.DataFrame(rows)


def perplexity_table(scores, *, by="trial_type", n_boot=2000, confidence=0.95,
                     random_state=0):
    """Perplexity per group of items: ``exp(total NLL / total tokens)``, bootstrap over items.

    Parameters
    ----------
    scores : DataFrame
        Per-item ``nll`` (nats, summed over the item's scored tokens) and
        ``n_tokens``.
    by : str, list of str or None, default="trial_type"
    n_boot : int, default=2000
    confidence : float, default=0.95
    random_state : int, default=0

    Returns
    -------
    pandas.DataFrame
        ``<by>, n_items, n_tokens, nll_per_token, perplexity, ci_low,
        ci_high, ci_method`` (``"bootstrap over items"``).
    """
    n_boot = check_positive_int("n_boot", n_boot)
    confidence = check_fraction("confidence", confidence, inclusive=(False, False))
    rows = []
    for key, g in _groups(scores, by):
        tok = g["n_tokens"].to_numpy(dtype=np.float64)
        nll = g["nll"].to_numpy(dtype=np.float64)
        if tok.sum() == 0:
            continue
        low, high = bootstrap_perplexity(nll, tok, n_boot=n_boot, confidence=confidence,
                                         random_state=random_state)
        row = dict(zip([by] if isinstance(by, str) else (by or ["group"]),
                       key if isinstance(key, tuple) else (key,)))
        per = nll.sum() / tok.sum()
        row.update(n_items=int(len(g)), n_tokens=int(tok.sum()), nll_per_token=per,
                   perplexity=float(np.exp(per)), ci_low=low, ci_high=high,
                   ci_method="bootstrap over items")
        rows.append(row)
    return pd.DataFrame(rows)
