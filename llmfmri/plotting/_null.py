"""Null calibration: how often each inference declares a network when there is none."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_columns, check_fraction
from ..exceptions import DataError
from ._base import Display, get_cmap

__all__ = ["NullCalibrationDisplay", "plot_null_calibration", "wilson_interval"]


def wilson_interval(k, n, level=0.95):
    """Wilson score interval of a binomial proportion ``k / n`` (Wilson 1927).

    Returns
    -------
    (low, high) : tuple of float
    """
    from scipy import stats

    if n <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


class NullCalibrationDisplay(Display):
    """Fraction of null splits in which each inference declared a network, with 95% intervals.

    On data without a task effect, a network should be declared in at most
    ``alpha`` of the splits (the dashed line) by an inference that controls
    its error rate at the level of a task claim. Build it with
    :meth:`from_table` (e.g. ``runs/null/null_calibration.tsv``).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per inference: ``inference, label, n_splits, n_declared,
        fraction, low, high, mean_units``.
    alpha : float

    Attributes
    ----------
    ax_, figure_
    bars_ : BarContainer
    errorbar_ : ErrorbarContainer
    nominal_line_ : Line2D
    texts_ : list of Text (``k / n`` above each bar)
    """

    def __init__(self, table, *, alpha=0.05, title=""):
        self.table = table
        self.alpha = float(alpha)
        self.title = title

    @classmethod
    def from_table(cls, table, *, alpha=0.05, title=None):
        """Summarise a null-calibration table.

        Parameters
        ----------
        table : pandas.DataFrame, str or Path
            One row per (split, inference) with columns ``split, inference,
            n_units, declared`` (and optionally ``correction``), or a TSV of it.
        alpha : float, default=0.05
            The nominal level.
        title : str, optional

        Raises
        ------
        DataError
            For a table without the columns, or without rows.
        """
        alpha = check_fraction("alpha", alpha)
        if not isinstance(table, pd.DataFrame):
            from ..io import read_tsv

            table = read_tsv(table)
        check_columns("table", table.columns, ["split", "inference", "n_units", "declared"],
                      error=DataError)
        if table.empty:
            raise DataError("table has no rows: there is no null split to summarise.")
        declared = table["declared"].map(
            lambda v: str(v).strip().lower() in ("true", "1", "yes")).astype(bool)
        t = table.assign(declared=declared)
        keys = ["inference"] + (["correction"] if "correction" in t else [])
        rows = []
        for key, g in t.groupby(keys, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            n, k = int(g["split"].nunique()), int(g["declared"].sum())
            low, high = wilson_interval(k, n)
            label = key[0] + (f"\n({key[1]})" if len(key) > 1 and pd.notna(key[1]) else "")
            rows.append({"inference": key[0], "label": label, "n_splits": n, "n_declared": k,
                         "fraction": k / n if n else float("nan"), "low": low, "high": high,
                         "mean_units": float(g["n_units"].mean())})
        return cls(pd.DataFrame(rows), alpha=alpha,
                   title=title if title is not None else
                   "null calibration: splits with a network declared")

    def plot(self, ax=None, *, colors=None, title=None):
        """Draw one bar per inference, its 95% interval, ``k / n`` and the nominal level.

        Returns
        -------
        self
        """
        t = self.table
        fig, ax = self._axes(ax, figsize=(2.2 + 1.3 * len(t), 3.8))
        x = np.arange(len(t))
        cmap = get_cmap("tab10")
        colours = colors or [cmap(i % 10) for i in range(len(t))]
        frac = t["fraction"].to_numpy()
        self.bars_ = ax.bar(x, frac, color=colours, width=0.6)
        err = np.vstack([frac - t["low"].to_numpy(), t["high"].to_numpy() - frac])
        self.errorbar_ = ax.errorbar(x, frac, yerr=err, fmt="none", ecolor="k", capsize=4,
                                     lw=1)
        self.nominal_line_ = ax.axhline(self.alpha, color="C3", ls="--", lw=1.2,
                                        label=f"nominal level \u03b1 = {self.alpha:g}")
        self.texts_ = [ax.text(i, min(h + 0.03, 1.0), f"{k} / {n}", ha="center",
                               va="bottom", fontsize="small")
                       for i, (h, k, n) in enumerate(zip(t["high"], t["n_declared"],
                                                         t["n_splits"]))]
        ax.set_xticks(x, t["label"].tolist(), fontsize="small")
        ax.set_ylim(0, 1.08)
        ax.set_ylabel("fraction of null splits\nwith a network (95% CI)")
        ax.set_xlabel("inference")
        ax.legend(fontsize="small", frameon=False, loc="upper left")
        ax.set_title(self.title if title is None else title, fontsize="medium")
        self.ax_, self.figure_ = ax, fig
        return self


def plot_null_calibration(table, *, alpha=0.05, title=None, ax=None, colors=None):
    """Plot how often each inference declares a network on null data.

    Parameters
    ----------
    table : pandas.DataFrame, str or Path
        Columns ``split, inference, n_units, declared`` (see
        :meth:`NullCalibrationDisplay.from_table`).

    Returns
    -------
    NullCalibrationDisplay
    """
    return NullCalibrationDisplay.from_table(table, alpha=alpha, title=title).plot(
        ax=ax, colors=colors)
