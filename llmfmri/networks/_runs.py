"""Splits of runs (for repeatability)."""

from __future__ import annotations

from .._utils import did_you_mean
from ..exceptions import DataError

__all__ = ["check_splits"]


def check_splits(splits, runs):
    """Named, disjoint, non-empty run subsets from ``"odd_even"``, ``"runs"``, a list or a dict.

    Returns
    -------
    dict of str -> list of runs

    Raises
    ------
    ValueError
        For an unknown split name.
    DataError
        For fewer than two splits, empty or overlapping splits, unknown runs.
    """
    runs = list(runs)
    if isinstance(splits, str):
        if splits == "odd_even":
            out = {"odd": runs[0::2], "even": runs[1::2]}
        elif splits == "runs":
            out = {f"run-{r}": [r] for r in runs}
        else:
            raise ValueError(
                f"Allowed values for splits are 'odd_even', 'runs', a list of run lists or a "
                f"dict, but got {splits!r}." + did_you_mean(splits, ["odd_even", "runs"])
            )
    elif hasattr(splits, "items"):
        out = {str(k): list(v) for k, v in splits.items()}
    else:
        out = {f"split-{k + 1}": list(v) for k, v in enumerate(splits)}
    if len(out) < 2:
        raise DataError(f"Repeatability needs at least 2 splits of the runs, but got {len(out)} "
                        f"from runs {runs}.")
    seen = {}
    for name, members in out.items():
        if not members:
            raise DataError(f"Split {name!r} holds no run.")
        for r in members:
            if r not in runs:
                raise DataError(f"Split {name!r} names run {r!r}, but the runs are {runs}.")
            if r in seen:
                raise DataError(f"Run {r!r} is in splits {seen[r]!r} and {name!r}; splits must be "
                                "disjoint (maps from overlapping data are not independent).")
            seen[r] = name
    return out
