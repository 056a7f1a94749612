"""Networks: overlay with their overlap, layer profiles, and the overlap matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..networks import Network, OverlapMatrix
from ._base import (BACKGROUND, NO_UNIT, Display, add_colorbar, get_cmap, row_labels,
                    set_row_ticks, site_rows)

__all__ = ["NetworkOverlayDisplay", "LayerProfileDisplay", "OverlapDisplay",
           "RepeatabilityDisplay", "plot_network_overlay", "plot_layer_profile", "plot_overlap",
           "plot_repeatability"]

#: colour of units in two networks or more
OVERLAP_COLOUR = "#000000"


def _networks(networks, name="networks"):
    """(labels, networks) of a Network, a list or a dict; same units; not all empty."""
    if isinstance(networks, Network):
        networks = [networks]
    if hasattr(networks, "items"):
        items = [(str(k), v) for k, v in networks.items()]
    else:
        items = [(getattr(n, "label", None), n) for n in networks]
    if not items:
        raise DataError(f"{name} is empty; pass at least one Network.")
    for label, net in items:
        if not isinstance(net, Network):
            raise TypeError(f"Every network must be a Network, but {label!r} is "
                            f"{type(net).__name__}.")
    first = items[0][1]
    for label, net in items:
        if net.units is None:
            raise DataError(f"The network {label!r} has no UnitSpace, so it has no layers to "
                            "plot; make it from a map with units (a Recording's maps have them).")
        if net.units is not first.units and not net.units == first.units:
            raise DataError(
                f"The networks {items[0][0]!r} and {label!r} are over different units "
                f"({first.units!r} and {net.units!r}): they come from another model or other "
                "sites. Plot together only networks from maps of the same recording."
            )
    if all(net.n_units == 0 for _, net in items):
        which = "The network" if len(items) == 1 else "Every network"
        raise DataError(
            f"{which} is empty ({', '.join(repr(k) for k, _ in items)}: 0 units), so there is "
            "nothing to plot; lower the threshold (a larger alpha, another correction) or take "
            "the top units with llmfmri.networks.top_k."
        )
    labels = [k for k, _ in items]
    return labels, [n for _, n in items]


def _palette(n):
    from matplotlib.colors import to_rgba

    cmap = get_cmap("tab10" if n <= 10 else "tab20")
    return [to_rgba(cmap(i % cmap.N)) for i in range(n)]


class NetworkOverlayDisplay(Display):
    """Several networks on one layers x units image, with their overlap.

    Each unit of exactly one network takes that network's colour; units in
    two networks or more are black; other units are light grey. Build it
    with :meth:`from_networks` (or :func:`plot_network_overlay`).

    Parameters
    ----------
    codes : ndarray of int, shape (n_sites, max_site_size)
        -2: no unit; -1: in no network; ``i``: only in network ``i``;
        ``n_networks``: in two or more.
    labels : list of str
    counts : pandas.DataFrame
        One row per network: ``label, n_units, n_only`` (+ an ``overlap`` row).
    row_labels : list of str

    Attributes
    ----------
    ax_, figure_
    image_ : AxesImage
        The RGBA image.
    legend_ : Legend
    colors_ : list of RGBA tuples, one per network
    """

    def __init__(self, codes, *, labels, counts, row_labels, title=""):
        self.codes = codes
        self.labels = list(labels)
        self.counts = counts
        self.row_labels = list(row_labels)
        self.title = title

    @classmethod
    def from_networks(cls, networks, *, title=None):
        """Compute the overlay.

        Parameters
        ----------
        networks : dict label -> Network, or list of Network
            Over the same units.
        title : str, optional

        Returns
        -------
        NetworkOverlayDisplay

        Raises
        ------
        DataError
            For networks over different units, without units, or all empty.
        """
        labels, nets = _networks(networks)
        units = nets[0].units
        masks = np.vstack([n.mask for n in nets])
        count = masks.sum(axis=0)
        code = np.full(units.n_units, -1, dtype=int)
        only = count == 1
        code[only] = np.argmax(masks[:, only], axis=0)
        code[count >= 2] = len(nets)
        rows = site_rows(units, code.astype(float), fill=-2.0).astype(int)
        counts = pd.DataFrame({"label": labels, "n_units": masks.sum(axis=1),
                               "n_only": (masks & only).sum(axis=1)})
        counts = pd.concat([counts, pd.DataFrame([{"label": "overlap (2 or more)",
                                                   "n_units": int((count >= 2).sum()),
                                                   "n_only": 0}])], ignore_index=True)
        default = "networks" if len(nets) > 1 else labels[0]
        return cls(rows, labels=labels, counts=counts, row_labels=row_labels(units),
                   title=default if title is None else title)

    def plot(self, ax=None, *, colors=None, legend=True, title=None):
        """Draw the overlay.

        Parameters
        ----------
        ax : Axes, optional
        colors : list of colours, optional
            One per network (default: tab10).
        legend : bool, default=True
        title : str, optional

        Returns
        -------
        self
        """
        from matplotlib.colors import to_rgba
        from matplotlib.patches import Patch

        n = len(self.labels)
        colours = _palette(n) if colors is None else [to_rgba(c) for c in colors]
        if len(colours) < n:
            raise ValueError(f"colors has {len(colours)} colours for {n} networks.")
        lut = np.array(colours[:n] + [to_rgba(OVERLAP_COLOUR), to_rgba(NO_UNIT),
                                      to_rgba(BACKGROUND)])
        # codes -2 (no unit) and -1 (no network) index the last two entries
        rgba = lut[np.where(self.codes == -2, n + 1, np.where(self.codes == -1, n + 2,
                                                              self.codes))]
        n_rows = self.codes.shape[0]
        fig, ax = self._axes(ax, figsize=(9.0, min(1.6 + 0.17 * n_rows, 9.0)))
        self.image_ = ax.imshow(rgba, origin="lower", aspect="auto", interpolation="nearest")
        set_row_ticks(ax, self.row_labels)
        ax.set_ylabel("layer")
        ax.set_xlabel("unit (index within the layer)")
        ax.set_title(self.title if title is None else title, fontsize="medium")
        self.legend_ = None
        if legend:
            rows = self.counts.set_index("label")
            handles = [Patch(facecolor=colours[i],
                             label=f"{lab}: {rows.loc[lab, 'n_units']:,} "
                                   f"({rows.loc[lab, 'n_only']:,} only here)")
                       for i, lab in enumerate(self.labels)]
            if n > 1:
                handles.append(Patch(facecolor=OVERLAP_COLOUR,
                                     label=f"in 2 or more: "
                                           f"{rows.loc['overlap (2 or more)', 'n_units']:,}"))
            self.legend_ = ax.legend(handles=handles, loc="upper left",
                                     bbox_to_anchor=(1.01, 1.0), fontsize="small",
                                     frameon=False, title="units", title_fontsize="small")
        self.colors_ = colours[:n]
        self.ax_, self.figure_ = ax, fig
        return self


class LayerProfileDisplay(Display):
    """Units per layer of each network (and of their overlap), as lines over layers.

    Build it with :meth:`from_networks` (or :func:`plot_layer_profile`).

    Parameters
    ----------
    profile : pandas.DataFrame
        Indexed by site (in layer order), one column per network (and
        ``"overlap"`` for units in two networks or more): units or fractions.
    row_labels : list of str
    normalize : bool

    Attributes
    ----------
    ax_, figure_
    lines_ : dict label -> Line2D
    """

    def __init__(self, profile, *, row_labels, normalize=False, site_size=None, title=""):
        self.profile = profile
        self.row_labels = list(row_labels)
        self.normalize = bool(normalize)
        self.site_size = site_size
        self.title = title

    @classmethod
    def from_networks(cls, networks, *, normalize=False, overlap=True, title=None):
        """Count the units of each network in each layer.

        Parameters
        ----------
        networks : Network, dict label -> Network, or list of Network
        normalize : bool, default=False
            Plot the fraction of each layer's units instead of counts.
        overlap : bool, default=True
            Add the units in two networks or more (with several networks).
        title : str, optional

        Returns
        -------
        LayerProfileDisplay

        Raises
        ------
        DataError
            For networks over different units, without units, or all empty.
        """
        labels, nets = _networks(networks)
        units = nets[0].units
        col = "fraction" if normalize else "n_units"
        data = {lab: net.layer_profile()[col].to_numpy() for lab, net in zip(labels, nets)}
        if overlap and len(nets) > 1:
            both = np.vstack([n.mask for n in nets]).sum(axis=0) >= 2
            prof = Network(both, units, rule="set", tail=None).layer_profile()
            data["in 2 or more"] = prof[col].to_numpy()
        profile = pd.DataFrame(data, index=pd.Index(units.sites, name="site"))
        sizes = sorted(set(units.table.groupby("site").size()))
        default = "units per layer" + ("" if len(nets) > 1 else f": {labels[0]}")
        return cls(profile, row_labels=row_labels(units), normalize=normalize,
                   site_size=sizes[0] if len(sizes) == 1 else None,
                   title=default if title is None else title)

    def plot(self, ax=None, *, colors=None, legend=True, title=None):
        """Draw one line per network.

        Returns
        -------
        self
        """
        fig, ax = self._axes(ax, figsize=(7.0, 3.6))
        x = np.arange(len(self.profile))
        labels = [c for c in self.profile.columns if c != "in 2 or more"]
        colours = _palette(len(labels)) if colors is None else list(colors)
        self.lines_ = {}
        for i, lab in enumerate(labels):
            (self.lines_[lab],) = ax.plot(x, self.profile[lab].to_numpy(), "o-", ms=3, lw=1.4,
                                          color=colours[i], label=lab)
        if "in 2 or more" in self.profile:
            (self.lines_["in 2 or more"],) = ax.plot(
                x, self.profile["in 2 or more"].to_numpy(), "--", color=OVERLAP_COLOUR, lw=1.2,
                label="in 2 or more")
        set_row_ticks(ax, self.row_labels, axis="x")
        ax.set_xlabel("layer")
        if self.normalize:
            ax.set_ylabel("fraction of the layer's units")
        else:
            of = f" (of {self.site_size})" if self.site_size else ""
            ax.set_ylabel(f"units in the network{of}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(self.title if title is None else title, fontsize="medium")
        self.legend_ = ax.legend(fontsize="small", frameon=False, loc="upper left",
                                 bbox_to_anchor=(1.01, 1.0)) if legend else None
        self.ax_, self.figure_ = ax, fig
        return self


_OVERLAP_NAMES = {"dice": "Dice", "jaccard": "Jaccard",
                  "overlap_coefficient": "overlap coefficient", "intersection": "shared units"}


def _stars(p):
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


class OverlapDisplay(Display):
    """The overlap matrix of networks, with significance marks.

    ``*``, ``**``, ``***``: p < 0.05, 0.01, 0.001 against random networks of
    the same layer profile (:func:`llmfmri.networks.overlap_test_matrix`).
    The diagonal (a network with itself) is grey. Build it with
    :meth:`from_overlap`, :meth:`from_frames` or :meth:`from_table`.

    Attributes
    ----------
    ax_, figure_
    image_ : AxesImage
        The observed overlap (diagonal masked).
    texts_ : ndarray of Text, shape (n, n)
        Value and marks of each cell (None on the diagonal).
    colorbar_ : Colorbar or None
    """

    def __init__(self, observed, p_value=None, *, metric="dice", title="", note=""):
        self.observed = observed
        self.p_value = p_value
        self.metric = metric
        self.title = title
        self.note = note

    @classmethod
    def from_frames(cls, observed, p_value=None, *, metric="dice", title=None):
        """From square DataFrames (index and columns: network labels).

        Parameters
        ----------
        observed : pandas.DataFrame of shape (n, n)
        p_value : pandas.DataFrame of shape (n, n), optional
            Aligned with ``observed`` (NaN on the diagonal).
        metric : str, default="dice"

        Raises
        ------
        DataError
            For a table that is not square, or p values with other labels.
        """
        observed = pd.DataFrame(observed).astype(float)
        if observed.shape[0] != observed.shape[1] or \
                list(observed.index.astype(str)) != list(observed.columns.astype(str)):
            raise DataError(
                f"observed must be a square table with the same labels on rows and columns, "
                f"but got shape {observed.shape}, rows {list(observed.index)} and columns "
                f"{list(observed.columns)}."
            )
        if observed.empty:
            raise DataError("observed is empty: there are no networks to compare.")
        if p_value is not None:
            p_value = pd.DataFrame(p_value).astype(float)
            if set(p_value.index) != set(observed.index) or \
                    set(p_value.columns) != set(observed.columns):
                raise DataError(
                    f"p_value has labels {list(p_value.index)} but observed has "
                    f"{list(observed.index)}; pass tables of the same networks."
                )
            p_value = p_value.loc[observed.index, observed.columns]
        note = "* p < 0.05, ** p < 0.01, *** p < 0.001 against layer-matched random " \
               "networks" if p_value is not None else ""
        name = _OVERLAP_NAMES.get(metric, metric)
        return cls(observed, p_value, metric=metric, title=title or f"overlap ({name})",
                   note=note)

    @classmethod
    def from_overlap(cls, overlap, *, title=None):
        """From :func:`llmfmri.networks.overlap_test_matrix` (an ``OverlapMatrix``)."""
        if not isinstance(overlap, OverlapMatrix):
            raise TypeError(f"overlap must be an OverlapMatrix (from overlap_test_matrix), but "
                            f"got {type(overlap).__name__}; use from_frames for tables.")
        return cls.from_frames(overlap.observed, overlap.p_value, metric=overlap.metric,
                               title=title)

    @classmethod
    def from_table(cls, table, *, title=None):
        """From the long table of ``OverlapMatrix.to_frame()`` (the main job's ``overlap.tsv``).

        Parameters
        ----------
        table : pandas.DataFrame
            Columns ``a, b, observed, p_value`` (and ``metric``), one row per pair.
        """
        from .._utils import check_columns

        check_columns("table", table.columns, ["a", "b", "observed", "p_value"], error=DataError)
        labels = list(dict.fromkeys(list(table["a"]) + list(table["b"])))
        obs = pd.DataFrame(np.eye(len(labels)), index=labels, columns=labels)
        p = pd.DataFrame(np.nan, index=labels, columns=labels)
        for row in table.itertuples():
            obs.loc[row.a, row.b] = obs.loc[row.b, row.a] = row.observed
            p.loc[row.a, row.b] = p.loc[row.b, row.a] = row.p_value
        metric = str(table["metric"].iloc[0]) if "metric" in table and len(table) else "dice"
        return cls.from_frames(obs, p, metric=metric, title=title)

    def plot(self, ax=None, *, cmap="magma_r", colorbar=True, values=True, title=None):
        """Draw the matrix.

        Parameters
        ----------
        ax : Axes, optional
        cmap : str, default="magma_r"
        colorbar : bool, default=True
        values : bool, default=True
            Write each cell's value and marks.
        title : str, optional

        Returns
        -------
        self
        """
        n = len(self.observed)
        fig, ax = self._axes(ax, figsize=(1.0 + 0.75 * n + 1.5, 1.0 + 0.7 * n + 0.8))
        data = self.observed.to_numpy(dtype=float).copy()
        off = ~np.eye(n, dtype=bool)
        shown = np.ma.masked_where(~off | ~np.isfinite(data), data)
        vmax = float(np.nanmax(data[off])) if n > 1 and np.isfinite(data[off]).any() else 1.0
        vmax = vmax if vmax > 0 else 1.0
        cm = get_cmap(cmap).with_extremes(bad=BACKGROUND)
        self.image_ = ax.imshow(shown, cmap=cm, vmin=0.0, vmax=vmax, interpolation="nearest")
        labels = [str(x) for x in self.observed.index]
        ax.set_xticks(np.arange(n), labels, rotation=40, ha="right", fontsize="small")
        ax.set_yticks(np.arange(n), labels, fontsize="small")
        texts = np.full((n, n), None, dtype=object)
        if values:
            for i in range(n):
                for j in range(n):
                    if i == j or not np.isfinite(data[i, j]):
                        continue
                    mark = _stars(self.p_value.iat[i, j]) if self.p_value is not None else ""
                    dark = data[i, j] > 0.55 * vmax
                    texts[i, j] = ax.text(j, i, f"{data[i, j]:.2f}{mark}", ha="center",
                                          va="center", fontsize="small" if n <= 8 else "x-small",
                                          color="white" if dark else "black")
        self.texts_ = texts
        head = self.title if title is None else title
        ax.set_title(head, fontsize="medium")
        if self.note:
            ax.set_xlabel(self.note, fontsize="x-small")
        self.colorbar_ = add_colorbar(fig, self.image_, ax,
                                      label=_OVERLAP_NAMES.get(self.metric, self.metric),
                                      fraction=0.046, pad=0.03) if colorbar else None
        self.ax_, self.figure_ = ax, fig
        return self


_METRIC_NAMES = {"pearson": "Pearson r of the z maps", "dice": "Dice of the networks",
                 "icc": "ICC(3,1) of the z maps"}


class RepeatabilityDisplay(Display):
    """Agreement of maps fitted on disjoint runs: within each task, against across tasks.

    A task is repeatable when its maps from different runs agree more with
    each other (filled dot) than with the maps of other tasks (open dot).
    Build it with :meth:`from_result` (a
    :class:`~llmfmri.networks.RepeatabilityResult` or its table, the main
    job's ``repeatability.tsv``).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per task: ``task, within, across, n_within, n_across``.
    metric : {"pearson", "dice", "icc"}

    Attributes
    ----------
    ax_, figure_
    within_, across_ : Line2D
    """

    def __init__(self, table, *, metric="pearson", title=""):
        self.table = table
        self.metric = metric
        self.title = title

    @classmethod
    def from_result(cls, result, *, metric="pearson", title=None):
        """Mean agreement per task.

        Parameters
        ----------
        result : RepeatabilityResult or pandas.DataFrame
            Columns ``task_a, task_b, same_task`` and the metric.
        metric : {"pearson", "dice", "icc"}, default="pearson"

        Raises
        ------
        DataError
            For a table without these columns or without rows.
        """
        from .._utils import check_columns, check_option

        check_option("metric", metric, tuple(_METRIC_NAMES))
        table = result.table if hasattr(result, "table") and hasattr(result, "splits") \
            else pd.DataFrame(result)
        check_columns("table", table.columns, ["task_a", "task_b", "same_task", metric],
                      error=DataError)
        if table.empty:
            raise DataError("The repeatability table has no rows (it needs two splits or more).")
        same = table["same_task"].map(lambda v: str(v).strip().lower() in ("true", "1"))
        tasks = list(dict.fromkeys(table["task_a"]))
        rows = []
        for task in tasks:
            within = table.loc[same & (table["task_a"] == task), metric].astype(float)
            across = table.loc[~same & ((table["task_a"] == task) | (table["task_b"] == task)),
                               metric].astype(float)
            rows.append({"task": task, "within": within.mean(), "across": across.mean(),
                         "n_within": int(within.notna().sum()),
                         "n_across": int(across.notna().sum())})
        return cls(pd.DataFrame(rows), metric=metric,
                   title=title if title is not None else "repeatability across runs")

    def plot(self, ax=None, *, title=None):
        """Draw within-task (filled) and across-task (open) agreement per task.

        Returns
        -------
        self
        """
        t = self.table
        fig, ax = self._axes(ax, figsize=(1.8 + 0.9 * len(t), 3.6))
        x = np.arange(len(t))
        for i, row in t.iterrows():
            ax.plot([i, i], [row["across"], row["within"]], color="0.6", lw=1, zorder=1)
        (self.within_,) = ax.plot(x, t["within"], "o", color="C0", ms=7,
                                  label="within task (same task, other runs)")
        (self.across_,) = ax.plot(x, t["across"], "o", mfc="white", mec="C0", ms=7,
                                  label="across tasks (other tasks, other runs)")
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(x, [str(v) for v in t["task"]], rotation=30, ha="right",
                      fontsize="small")
        ax.set_ylabel(_METRIC_NAMES[self.metric], fontsize="small")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", frameon=False, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0))
        ax.set_title(self.title if title is None else title, fontsize="medium")
        self.ax_, self.figure_ = ax, fig
        return self


def plot_repeatability(result, *, metric="pearson", title=None, ax=None):
    """Plot within-task against across-task agreement (see :class:`RepeatabilityDisplay`).

    Returns
    -------
    RepeatabilityDisplay
    """
    return RepeatabilityDisplay.from_result(result, metric=metric, title=title).plot(ax=ax)


def plot_network_overlay(networks, *, title=None, ax=None, colors=None, legend=True):
    """Plot several networks and their overlap on the layers x units image.

    Returns
    -------
    NetworkOverlayDisplay
    """
    return NetworkOverlayDisplay.from_networks(networks, title=title).plot(
        ax=ax, colors=colors, legend=legend)


def plot_layer_profile(networks, *, normalize=False, overlap=True, title=None, ax=None,
                       colors=None, legend=True):
    """Plot the units per layer of each network (see :class:`LayerProfileDisplay`).

    Returns
    -------
    LayerProfileDisplay
    """
    return LayerProfileDisplay.from_networks(networks, normalize=normalize, overlap=overlap,
                                             title=title).plot(ax=ax, colors=colors,
                                                               legend=legend)


def plot_overlap(overlap, p_value=None, *, metric="dice", title=None, ax=None, cmap="magma_r",
                 colorbar=True):
    """Plot an overlap matrix with significance marks (see :class:`OverlapDisplay`).

    Parameters
    ----------
    overlap : OverlapMatrix, square DataFrame of the metric, or the long ``overlap.tsv`` table
    p_value : DataFrame, optional
        With a square ``overlap`` table.

    Returns
    -------
    OverlapDisplay
    """
    if isinstance(overlap, OverlapMatrix):
        disp = OverlapDisplay.from_overlap(overlap, title=title)
    elif isinstance(overlap, pd.DataFrame) and {"a", "b", "observed"} <= set(overlap.columns):
        disp = OverlapDisplay.from_table(overlap, title=title)
    else:
        disp = OverlapDisplay.from_frames(overlap, p_value, metric=metric, title=title)
    return disp.plot(ax=ax, cmap=cmap, colorbar=colorbar)
