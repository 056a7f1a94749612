"""Identification by correspondence: which task network is active in a held-out block?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_option, check_positive_int, check_random_state, logger, warn, \
    progress_bar, with_verbose
from ..exceptions import DataError, LeakageWarning
from ..glm import as_runs, summarize_prompts
from ..networks import TAILS, task_maps, threshold, top_k
from ._data import task_contrasts
from ._result import DecodingResult, confusion_table, permutation_p

__all__ = ["identify", "network_scores"]


def network_scores(patterns, networks, mean, scale):
    """Score of each network on each pattern: mean standardised activity of its units.

    Parameters
    ----------
    patterns : array of shape (n_samples, n_units)
        Block (or prompt) summaries.
    networks : dict task -> Network
    mean, scale : array of shape (n_units,)
        Per-unit mean and standard deviation from training data only.

    Returns
    -------
    pandas.DataFrame of shape (n_samples, n_tasks)
        ``mean_u w_u (x_u - mean_u) / scale_u`` over the network's units, with
        ``w_u`` = +1 (positive tail), -1 (negative) or the sign of the unit's
        training statistic (two-sided); NaN for an empty network.
    """
    Z = (np.asarray(patterns, dtype=float) - mean) / scale
    out = {}
    for task, net in networks.items():
        cols = net.columns
        if cols.size == 0:
            out[task] = np.full(Z.shape[0], np.nan)
            continue
        if net.tail == "negative":
            w = -np.ones(cols.size)
        elif net.tail == "two-sided" and net.stat_map is not None:
            w = np.sign(net.stat_map.values[cols])
        else:
            w = np.ones(cols.size)
        out[task] = Z[:, cols] @ w / cols.size
    return pd.DataFrame(out)


def _warn_shared_prompts(view):
    """Log a warning when runs repeat prompts (held-out blocks would not be new stimuli)."""
    seen = {}
    for run in view.runs:
        ev = view.events(run)
        if "prompt_id" not in ev.columns:
            return
        for p in pd.unique(ev["prompt_id"].dropna()):
            if p in seen and seen[p] != run:
                warn(f"identify: prompt {p!r} is presented in runs {seen[p]} and {run}; a "
                     "held-out run that repeats training prompts tests the prompts as much as "
                     "the task (use runs with disjoint prompts, runs: {split: disjoint}).",
                     LeakageWarning)
                return
            seen.setdefault(p, run)


def _networks(maps, alpha, correction, tail, fraction):
    if fraction is not None:
        return {t: top_k(m, fraction=fraction, tail=tail, label=t) for t, m in maps.items()}
    return {t: threshold(m, alpha=alpha, correction=correction, tail=tail, label=t)
            for t, m in maps.items()}


@with_verbose
def identify(data, tasks, *, baseline=None, events=None, runs=None, units=None, by="block",
             inference="prompt", alpha=0.05, correction="fdr", tail="positive", fraction=None,
             n_permutations=1000, random_state=None, map_kwargs=None, verbose=0):
    """Identify the task of held-out blocks from task networks defined on the other runs.

    The seed study's test (Nencka et al. 2023, arXiv 2311.10898): networks
    defined without a run identify the task presented in that run.
    Leave-one-run-out: for each run, every task's map is fitted on the other
    runs only (:func:`llmfmri.networks.task_maps`, over prompts by default)
    and thresholded into a network. Each held-out block (or prompt, ``by``)
    of a task is summarised (mean over its frames), standardised per unit
    with the mean and standard deviation of the *training* runs' blocks, and
    each network is scored by the mean standardised activity of its units;
    the prediction is the best-scoring network.

    Parameters
    ----------
    data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
        At least two runs.
    tasks : dict condition -> contrast, or list of conditions
        The conditions to identify and the contrast defining each one's
        network, e.g. ``{"medical_imaging": "medical_imaging - control"}``;
        a list needs ``baseline``.
    baseline : str, optional
        With a list of tasks: the contrast of task ``t`` is ``"t - baseline"``.
    events, runs, units
        As in :func:`llmfmri.networks.task_map`.
    by : str, default="block"
        Unit identified in the held-out run: ``"block"`` or ``"prompt_id"``.
    inference : {"prompt", "permutation", "token"}, default="prompt"
        Inference of the training maps.
    alpha, correction, tail
        Threshold of the networks (:func:`llmfmri.networks.threshold`).
    fraction : float, optional
        Use the top ``fraction`` of units of each map instead
        (:func:`llmfmri.networks.top_k`): networks never empty.
    n_permutations : int, default=1000
        Permutations of the held-out labels (0: no test).
    random_state : int or numpy Generator, optional
    map_kwargs : dict, optional
        Further arguments of :func:`llmfmri.networks.task_map`.
    verbose : int, default=0

    Returns
    -------
    DecodingResult
        ``accuracy``, ``chance`` (``1 / n_tasks``), ``null``,
        ``chance_empirical``, ``p_value``, ``predictions`` (with each
        network's score), ``confusion``, ``cv_scores`` (per held-out run)
        and ``networks`` (per held-out run).

    Raises
    ------
    DataError
        For fewer than two runs or tasks, tasks absent from the held-out
        blocks, or a list of tasks without ``baseline``.

    Notes
    -----
    The permutation test exchanges the task labels of the held-out blocks
    within each run, keeping the networks (fitted without those runs) and
    the predictions fixed: blocks, not tokens, are exchanged, so the test
    respects that prompts are the sampling unit, and it needs no refit. It
    tests whether predictions and presented tasks agree more than by
    chance given the networks; ``chance_empirical`` (the mean of the null)
    accounts for unbalanced predictions.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from llmfmri.decoding import identify
    >>> rng = np.random.default_rng(0)
    >>> kinds = ["a", "control", "b", "control"] * 3
    >>> events = [pd.DataFrame({"onset": np.arange(240), "duration": 1,
    ...                         "trial_type": np.repeat(kinds, 20),
    ...                         "block": np.arange(240) // 20,
    ...                         "prompt_id": [f"r{r}-p{k // 5}" for k in range(240)]})
    ...           for r in range(3)]
    >>> runs = [rng.standard_normal((240, 40)) for _ in range(3)]
    >>> for Y, ev in zip(runs, events):
    ...     Y[ev.trial_type == "a", :4] += 1.5; Y[ev.trial_type == "b", 4:8] += 1.5
    >>> res = identify(runs, ["a", "b"], baseline="control", events=events,
    ...                n_permutations=200, random_state=0)
    >>> res.accuracy, res.chance, res.p_value < 0.05
    (1.0, 0.5, True)
    """
    check_option("tail", tail, TAILS)
    n_permutations = check_positive_int("n_permutations", n_permutations, minimum=0)
    contrasts = task_contrasts(tasks, baseline)
    view = as_runs(data, events, runs, units)
    if len(view.runs) < 2:
        raise DataError(f"Leave-one-run-out identification needs at least 2 runs, but the data "
                        f"have {len(view.runs)} ({view.runs}).")
    table, values = summarize_prompts(view, by=by)
    if "trial_type" not in table.columns:
        raise DataError(f"The events have no 'trial_type' for the {by} summaries; "
                        "identification needs each block's task.")
    labels = table["trial_type"].astype(object)
    missing = [t for t in contrasts if not (labels == t).any()]
    if missing:
        raise DataError(
            f"Task {missing[0]!r} has no {by} in the data; the {by}s' trial types are "
            f"{sorted(map(str, pd.unique(labels.dropna())))}. Give tasks that name conditions."
        )
    classes = list(contrasts)
    _warn_shared_prompts(view)
    kwargs = dict(map_kwargs or {})
    rows, fold_nets = [], {}
    with progress_bar(total=len(view.runs), desc="identify", unit="run",
                      verbose=verbose) as bar:
        for run in view.runs:
            train = [r for r in view.runs if r != run]
            maps = task_maps(view, contrasts, runs=train, inference=inference, verbose=verbose,
                             **kwargs)
            nets = _networks(maps, alpha, correction, tail, fraction)
            empty = [t for t, n in nets.items() if n.n_units == 0]
            if empty:
                logger.warning("identify: held-out run %s: no unit passed the threshold for %s; "
                               "those tasks cannot be predicted (pass fraction=0.01 for top-k "
                               "networks)", run, empty)
            fold_nets[run] = nets
            tr = table["run"].isin(train).to_numpy()
            mean = values[tr].mean(axis=0)
            scale = values[tr].std(axis=0, ddof=1)
            scale = np.where(scale > 0, scale, np.inf)
            te = np.flatnonzero((table["run"] == run).to_numpy() & labels.isin(classes))
            scores = network_scores(values[te], nets, mean, scale)
            arr = scores.to_numpy()
            best = np.where(np.isnan(arr).all(axis=1), -1,
                            np.argmax(np.where(np.isnan(arr), -np.inf, arr), axis=1))
            pred = [classes[b] if b >= 0 else None for b in best]
            frame = pd.DataFrame({"fold": run, "run": run, by: table[by].to_numpy()[te],
                                  "true": labels.to_numpy()[te], "predicted": pred})
            frame["correct"] = frame["true"] == frame["predicted"]
            for t in classes:
                frame[f"score_{t}"] = scores[t].to_numpy()
            rows.append(frame)
            bar.update(1)
    predictions = pd.concat(rows, ignore_index=True)
    correct = predictions["correct"].to_numpy()
    accuracy = float(correct.mean()) if correct.size else float("nan")
    cv_scores = predictions.groupby("fold", sort=False)["correct"].mean().rename("accuracy")
    # null: the task labels of the held-out blocks, permuted within each run
    rng = check_random_state(random_state)
    true = predictions["true"].to_numpy()
    predicted = predictions["predicted"].to_numpy()
    groups = [np.flatnonzero(predictions["run"].to_numpy() == r) for r in view.runs]
    null = np.empty(n_permutations)
    for k in range(n_permutations):
        perm = np.arange(true.size)
        for g in groups:
            perm[g] = g[rng.permutation(g.size)]
        null[k] = np.mean(true[perm] == predicted)
    return DecodingResult(
        method="identification", scoring="accuracy", score=accuracy, accuracy=accuracy,
        chance=1.0 / len(classes), null=null, p_value=permutation_p(accuracy, null),
        cv_scores=cv_scores, predictions=predictions,
        confusion=confusion_table(true, predicted, classes), classes=classes,
        networks=fold_nets)
