"""Repeatability: maps and networks from disjoint runs, compared within and across tasks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._utils import check_option, logger, progress_bar, with_verbose
from ..exceptions import DataError
from ..glm import as_runs
from ._overlap import dice
from ._runs import check_splits
from ._taskmap import TAILS, TaskMap, task_maps
from ._threshold import threshold, top_k

__all__ = ["icc", "repeatability", "RepeatabilityResult", "make_networks"]


def icc(ratings):
    """ICC(3,1): two-way mixed, consistency, single measurement (Shrout & Fleiss 1979).

    ``(BMS - EMS) / (BMS + (k - 1) EMS)``, with ``BMS`` the mean square
    between targets (units) and ``EMS`` the residual mean square of the
    two-way ANOVA targets x raters (maps). Differences in the mean of each
    map do not lower it (consistency, not absolute agreement).

    Parameters
    ----------
    ratings : array of shape (n_targets, k) or list of k maps (UnitMap, TaskMap or arrays)
        One column per rater (e.g. the z map of each split), one row per
        target (unit).

    Returns
    -------
    float
        In [-1/(k-1), 1]; NaN when every value is equal.

    Raises
    ------
    DataError
        For fewer than 2 raters or 2 targets, or non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.networks import icc
    >>> x = np.array([1.0, 2.0, 3.0, 4.0])
    >>> icc(np.c_[x, x + 10.0])   # a constant shift keeps consistency
    1.0
    >>> round(icc(np.c_[x, x[::-1]]), 3)
    -1.0
    """
    if isinstance(ratings, (list, tuple)):
        cols = [np.asarray(r.z.values if isinstance(r, TaskMap) else getattr(r, "values", r),
                           dtype=float).ravel() for r in ratings]
        if len({c.size for c in cols}) > 1:
            raise DataError(f"The maps have different sizes {[c.size for c in cols]}.")
        Y = np.column_stack(cols) if cols else np.empty((0, 0))
    else:
        Y = np.asarray(ratings, dtype=float)
    if Y.ndim != 2 or Y.shape[0] < 2 or Y.shape[1] < 2:
        raise DataError(f"icc needs ratings of shape (n_targets >= 2, k >= 2), but got shape "
                        f"{Y.shape}.")
    if not np.isfinite(Y).all():
        raise DataError("icc got NaN or infinite ratings.")
    n, k = Y.shape
    grand = Y.mean()
    ss_rows = k * ((Y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((Y.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((Y - grand) ** 2).sum() - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    den = bms + (k - 1) * ems
    return float((bms - ems) / den) if den > 0 else float("nan")


def make_networks(maps, *, alpha=0.05, correction="fdr", tail="positive", fraction=None):
    """Networks of several maps: :func:`threshold` or, with ``fraction``, :func:`top_k`."""
    out = {}
    for label, m in maps.items():
        if fraction is not None:
            out[label] = top_k(m, fraction=fraction, tail=tail, label=label)
        else:
            out[label] = threshold(m, alpha=alpha, correction=correction, tail=tail, label=label)
    return out


@dataclass(frozen=True, eq=False)
class RepeatabilityResult:
    """Maps and networks of each split, and their agreement (:func:`repeatability`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (pair of splits, pair of tasks): ``split_a, split_b,
        task_a, task_b, same_task, dice, pearson, icc, n_units_a, n_units_b``.
        ``same_task`` rows measure repeatability; the others the similarity
        expected between different tasks, their reference.
    maps : dict of (split, task) -> TaskMap
    networks : dict of (split, task) -> Network
    splits : dict of split -> list of runs
    inference : str
    """

    table: pd.DataFrame
    maps: dict = field(repr=False)
    networks: dict = field(repr=False)
    splits: dict
    inference: str

    def summary(self):
        """Mean Dice, Pearson r and ICC(3,1) within tasks and across tasks.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``comparison`` (``"within task"``, ``"across tasks"``),
            columns ``dice, pearson, icc, n_pairs``.
        """
        t = self.table.assign(comparison=np.where(self.table["same_task"], "within task",
                                                  "across tasks"))
        out = t.groupby("comparison")[["dice", "pearson", "icc"]].mean()
        out["n_pairs"] = t.groupby("comparison").size()
        return out.reindex([c for c in ("within task", "across tasks") if c in out.index])

    def to_frame(self):
        """The tidy table (a copy)."""
        return self.table.copy()


@with_verbose
def repeatability(data, contrasts, *, splits="odd_even", events=None, runs=None, units=None,
                  inference="prompt", alpha=0.05, correction="fdr", tail="positive",
                  fraction=None, map_kwargs=None, verbose=0):
    """Agreement of maps and networks fitted on disjoint runs, within and across tasks.

    Each split of the runs (odd vs even runs, each run alone, or given
    subsets) gets its own map of every contrast (:func:`task_maps`, inference
    over prompts by default) and network. For every pair of splits and every
    pair of tasks the table gives the Dice coefficient of the networks, the
    Pearson correlation of the z maps across units and their ICC(3,1)
    (Shrout & Fleiss 1979). A task is repeatable when its within-task
    agreement exceeds the across-task agreement.

    Parameters
    ----------
    data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
    contrasts : dict label -> contrast, or list of contrast strings
        E.g. ``{"medical": "medical_imaging - control", ...}``.
    splits : {"odd_even", "runs"}, list of lists of runs, or dict name -> runs
        ``"odd_even"``: runs in positions 1, 3, 5... against 2, 4, 6...;
        ``"runs"``: each run alone. Splits must be disjoint.
    events, runs, units
        As in :func:`task_map`.
    inference : {"prompt", "permutation", "token"}, default="prompt"
    alpha, correction, tail
        Threshold of every network (see :func:`threshold`).
    fraction : float, optional
        Instead of a threshold, keep the top ``fraction`` of units of each map
        (:func:`top_k`): networks of equal size, never empty.
    map_kwargs : dict, optional
        Further arguments of :func:`task_map` (``by``, ``statistic``,
        ``n_permutations``, ``random_state``, GLM options).
    verbose : int, default=0

    Returns
    -------
    RepeatabilityResult
        ``.table`` (tidy), ``.summary()`` (within vs across tasks),
        ``.maps``, ``.networks``.

    Raises
    ------
    DataError
        For fewer than two splits, overlapping or empty splits.
    """
    check_option("tail", tail, TAILS)
    if isinstance(contrasts, str):
        contrasts = [contrasts]
    if not hasattr(contrasts, "items"):
        contrasts = {str(c): c for c in contrasts}
    if not contrasts:
        raise DataError("contrasts is empty; give at least one contrast.")
    view = as_runs(data, events, runs, units)
    parts = check_splits(splits, view.runs)
    kwargs = dict(map_kwargs or {})
    maps, nets = {}, {}
    with progress_bar(total=len(parts), desc="repeatability", unit="split",
                      verbose=verbose) as bar:
        for name, members in parts.items():
            logger.info("repeatability: split %s (runs %s)", name, members)
            found = task_maps(view, contrasts, runs=members, inference=inference,
                              verbose=verbose, **kwargs)
            split_nets = make_networks(found, alpha=alpha, correction=correction, tail=tail,
                                       fraction=fraction)
            for label in contrasts:
                maps[(name, label)] = found[label]
                nets[(name, label)] = split_nets[label]
            bar.update(1)
    names, labels = list(parts), list(contrasts)
    rows = []
    for i, sa in enumerate(names):
        for sb in names[i + 1:]:
            for ta in labels:
                for tb in labels:
                    za, zb = maps[(sa, ta)].z.values, maps[(sb, tb)].z.values
                    r = float("nan")
                    if za.std() > 0 and zb.std() > 0:
                        r = float(np.corrcoef(za, zb)[0, 1])
                    rows.append({"split_a": sa, "split_b": sb, "task_a": ta, "task_b": tb,
                                 "same_task": ta == tb,
                                 "dice": dice(nets[(sa, ta)], nets[(sb, tb)]),
                                 "pearson": r, "icc": icc(np.c_[za, zb]),
                                 "n_units_a": nets[(sa, ta)].n_units,
                                 "n_units_b": nets[(sb, tb)].n_units})
    return RepeatabilityResult(table=pd.DataFrame(rows), maps=maps, networks=nets,
                               splits=parts, inference=inference)
