"""Lesion effects: behaviour intact, lesioned and under each control's draws."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_columns
from ..exceptions import DataError
from ._base import Display, add_note, get_cmap

__all__ = ["LesionEffectDisplay", "plot_lesion_effect"]

_REQUIRED = ["condition", "measure", "set", "value"]
#: conditions drawn first, in this order; every other condition is a control kind
_MAIN = ("intact", "lesion")


def _read(table):
    """A behaviour table from a DataFrame, a TSV path or a study object (``.behaviour``)."""
    if hasattr(table, "behaviour") and isinstance(table.behaviour, pd.DataFrame):
        table = table.behaviour
    if not isinstance(table, pd.DataFrame):
        from ..io import read_tsv

        table = read_tsv(table, dtype={"condition": str, "set": str, "measure": str})
    return table


class LesionEffectDisplay(Display):
    """Behaviour per text set or task: intact, lesioned, and every control draw.

    One panel per measure (perplexity, accuracy...); within a panel one group
    per set: the intact model (black circle), the lesion (red diamond, with its
    interval over items when the table has one) and, for each control kind
    (random draws, magnitude-matched draws, the least selective units, the
    bottom region...), every draw as a point and their median as a bar. A
    lesion's effect reads as the distance of the diamond from the controls'
    cloud; perplexity is drawn on a log axis. Build it with :meth:`from_table`
    (a study's ``behaviour`` table, ``lesion-behaviour.tsv`` of ``llmfmri
    lesion`` or ``weight-lesion-behaviour.tsv``) or :meth:`from_study`.

    Parameters
    ----------
    table : pandas.DataFrame
        Whole-set rows: ``condition, draw, measure, set, value`` and optionally
        ``ci_low, ci_high``.
    label : str
        The lesion's name (the title).
    conditions : list of str, optional
        The conditions in the order they are drawn (default: the table's).

    Attributes
    ----------
    axes_ : list of Axes
        One per measure.
    figure_ : Figure
    artists_ : dict
        ``(measure, condition) -> PathCollection`` of the plotted points.
    """

    def __init__(self, table, *, label="lesion", conditions=None):
        self.table = table
        self.label = label
        self.conditions = (list(conditions) if conditions is not None
                           else list(dict.fromkeys(table["condition"])))

    @classmethod
    def from_table(cls, table, *, measures=None, sets=None, label=None):
        """Read a behaviour table (whole sets only).

        Parameters
        ----------
        table : pandas.DataFrame, str, Path or a study
            ``condition`` (``intact``, ``lesion`` and control kinds), ``draw``,
            ``measure``, ``set``, ``value`` (optionally ``subset``: only
            ``"all"`` rows are kept; ``ci_low``, ``ci_high``), a TSV of it, or an
            object with a ``behaviour`` table (``LesionStudy``,
            ``WeightLesionStudy``).
        measures, sets : list of str, optional
            Only these measures / sets, in this order.
        label : str, optional
            Default ``"lesion"``.

        Returns
        -------
        LesionEffectDisplay

        Raises
        ------
        DataError
            For a table without the columns, without rows, without a lesioned
            condition, or a measure or set it does not have.
        """
        t = _read(table)
        check_columns("table", t.columns, _REQUIRED, error=DataError)
        if "subset" in t:
            t = t[t["subset"].astype(str) == "all"]
        if t.empty:
            raise DataError("table has no rows: there is no behaviour to plot (a lesion "
                            "study's behaviour table has one row per condition, draw, "
                            "measure and set).")
        t = t.assign(condition=t["condition"].astype(str), set=t["set"].astype(str),
                     measure=t["measure"].astype(str))
        if "draw" not in t:
            t = t.assign(draw=0)
        if "lesion" not in set(t["condition"]):
            raise DataError(f"table has no 'lesion' condition (conditions: "
                            f"{sorted(set(t['condition']))}); it is not a lesion study's "
                            "behaviour table.")
        for name, wanted in (("measure", measures), ("set", sets)):
            if wanted is None:
                continue
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            missing = [w for w in wanted if w not in set(t[name])]
            if missing:
                raise DataError(f"{name}s {missing} are not in the table; it has "
                                f"{list(dict.fromkeys(t[name]))}.")
            t = t[t[name].isin(wanted)]
            t = t.assign(**{name: pd.Categorical(t[name], categories=wanted, ordered=True)})
        conditions = list(dict.fromkeys(t["condition"]))  # the table's order, before sorting
        t = t.sort_values(["measure", "set"], kind="stable").reset_index(drop=True)
        t = t.assign(measure=t["measure"].astype(str), set=t["set"].astype(str))
        return cls(t, label=label or "lesion", conditions=conditions)

    @classmethod
    def from_study(cls, study, **kwargs):
        """The behaviour of a ``LesionStudy`` or ``WeightLesionStudy`` (see :meth:`from_table`)."""
        lesion = getattr(study, "lesion", None)
        label = kwargs.pop("label", None) or getattr(lesion, "label", None)
        return cls.from_table(study.behaviour, label=label, **kwargs)

    @property
    def controls(self):
        """Control kinds in the table's order."""
        return [c for c in self.conditions if c not in _MAIN]

    def plot(self, axes=None, *, log=None, title=None):
        """Draw one panel per measure.

        Parameters
        ----------
        axes : list of Axes, optional
            One per measure (default: a new figure).
        log : bool, optional
            Log y axis; default: for perplexities.
        title : str, optional

        Returns
        -------
        self
        """
        from ._base import pyplot

        plt = pyplot()
        t = self.table
        measures = list(dict.fromkeys(t["measure"]))
        n_sets = max(t.groupby("measure")["set"].nunique())
        if axes is None:
            fig, axes = plt.subplots(len(measures), 1, squeeze=False,
                                     figsize=(2.6 + 1.25 * n_sets, 3.3 * len(measures)))
            axes = list(axes[:, 0])
        else:
            axes = list(np.atleast_1d(axes))
            if len(axes) != len(measures):
                raise ValueError(f"axes: expected {len(measures)} axes (one per measure "
                                 f"{measures}), but got {len(axes)}.")
            fig = axes[0].figure
        kinds = self.controls
        cmap = get_cmap("tab10")
        # tab10 without its red (the lesion) and grey: blue, green, purple, orange, ...
        palette = [0, 2, 4, 1, 5, 6, 8, 9]
        colours = {k: cmap(palette[i % len(palette)]) for i, k in enumerate(kinds)}
        n_cols = 2 + len(kinds)
        width = 0.8
        offsets = (np.arange(n_cols) - (n_cols - 1) / 2) * width / n_cols
        rng = np.random.default_rng(0)  # jitter only: the same figure every time
        self.artists_ = {}
        for ax, measure in zip(axes, measures):
            m = t[t["measure"] == measure]
            sets = list(dict.fromkeys(m["set"]))
            x = {s: i for i, s in enumerate(sets)}
            intact = m[m["condition"] == "intact"]
            if not intact.empty:
                self.artists_[(measure, "intact")] = ax.scatter(
                    [x[s] + offsets[0] for s in intact["set"]], intact["value"], marker="o",
                    color="k", s=36, zorder=3, label="intact")
            les = m[m["condition"] == "lesion"]
            xs = np.array([x[s] + offsets[1] for s in les["set"]])
            if {"ci_low", "ci_high"} <= set(les.columns):
                low = pd.to_numeric(les["ci_low"], errors="coerce").to_numpy()
                high = pd.to_numeric(les["ci_high"], errors="coerce").to_numpy()
                v = les["value"].to_numpy(dtype=float)
                ok = np.isfinite(low) & np.isfinite(high)
                if ok.any():
                    # an interval need not contain the point (a bootstrap percentile
                    # interval of a ratio): draw what is on each side, never below zero
                    err = np.clip(np.vstack([v[ok] - low[ok], high[ok] - v[ok]]), 0, None)
                    ax.errorbar(xs[ok], v[ok], yerr=err,
                                fmt="none", ecolor="C3", lw=1, capsize=3, zorder=2)
            self.artists_[(measure, "lesion")] = ax.scatter(
                xs, les["value"], marker="D", color="C3", s=42, zorder=4, label=self.label)
            for j, kind in enumerate(kinds, start=2):
                c = m[m["condition"] == kind]
                if c.empty:
                    continue
                jitter = rng.uniform(-0.35, 0.35, size=len(c)) * width / n_cols
                n_draws = int(c.groupby("set").size().max())
                self.artists_[(measure, kind)] = ax.scatter(
                    [x[s] + offsets[j] for s in c["set"]] + jitter, c["value"], s=14,
                    color=colours[kind], alpha=0.8, zorder=3,
                    label=f"{kind} ({n_draws} draw{'s' if n_draws > 1 else ''})")
                med = c.groupby("set", sort=False)["value"].median()
                for s, v in med.items():
                    ax.hlines(v, x[s] + offsets[j] - 0.45 * width / n_cols,
                              x[s] + offsets[j] + 0.45 * width / n_cols,
                              color=colours[kind], lw=2, zorder=3)
            values = m["value"].to_numpy(dtype=float)
            use_log = ("perplexity" in measure) if log is None else bool(log)
            if use_log and np.all(values[np.isfinite(values)] > 0):
                ax.set_yscale("log")
            ax.set_xticks(range(len(sets)), sets, fontsize="small", rotation=30 if
                          max(len(s) for s in sets) > 8 else 0,
                          ha="right" if max(len(s) for s in sets) > 8 else "center")
            ax.set_xlim(-0.6, len(sets) - 0.4)
            ax.set_ylabel(measure.replace("_", " "))
            ax.grid(axis="y", color="0.9", lw=0.6)
            ax.set_axisbelow(True)
            if not np.isfinite(values).any():
                add_note(ax, f"no finite {measure} value")
        # one legend for every panel: a control kind may be missing from some measures
        handles = {}
        for (_, condition), artist in self.artists_.items():
            handles.setdefault(condition, artist)
        order = [c for c in ("intact", "lesion", *kinds) if c in handles]
        handles = {handles[c].get_label(): handles[c] for c in order}
        axes[0].legend(list(handles.values()), list(handles), fontsize="small", frameon=False,
                       loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axes[0].set_title(title if title is not None else
                          f"behaviour under the lesion {self.label!r} and its controls",
                          fontsize="medium")
        fig.tight_layout()
        self.axes_, self.ax_, self.figure_ = axes, axes[0], fig
        return self


def plot_lesion_effect(table, *, measures=None, sets=None, label=None, log=None, title=None,
                       axes=None):
    """Plot a lesion's behaviour against the intact model and its controls' draws.

    Parameters
    ----------
    table : pandas.DataFrame, str, Path or a study
        See :meth:`LesionEffectDisplay.from_table`.

    Returns
    -------
    LesionEffectDisplay

    Examples
    --------
    >>> import pandas as pd
    >>> from llmfmri.plotting import plot_lesion_effect
    >>> rows = [("intact", 0, 20.0), ("lesion", 0, 95.0)] + [("random", k, 21.0 + k)
    ...                                                      for k in range(5)]
    >>> table = pd.DataFrame([{"condition": c, "draw": d, "measure": "perplexity",
    ...                        "set": "english", "value": v} for c, d, v in rows])
    >>> disp = plot_lesion_effect(table, label="language top 1 %")
    >>> disp.controls
    ['random']
    """
    return LesionEffectDisplay.from_table(table, measures=measures, sets=sets,
                                          label=label).plot(axes, log=log, title=title)
