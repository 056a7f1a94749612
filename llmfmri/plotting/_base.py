"""What every Display shares: the guarded matplotlib import, colour maps, axes, input checks.

matplotlib is imported inside functions only, so ``import llmfmri.plotting`` stays light.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from ..glm import UnitMap
from ..networks import Network, TaskMap

__all__ = ["pyplot", "get_cmap", "check_same_units", "resolve_map", "site_rows",
           "row_labels", "set_row_ticks", "panel_axes", "add_note", "add_colorbar",
           "threshold_values", "symmetric_vmax", "Display", "BACKGROUND", "NO_UNIT"]

#: colour of units that exist but are blank (below the threshold, or outside every network)
BACKGROUND = "#e6e6e6"
#: colour of grid cells that hold no unit (padding of the folded grid)
NO_UNIT = "#ffffff"

_INSTALL_HINT = ("llmfmri.plotting needs matplotlib (a dependency of llmfmri); install it with "
                 "`pip install matplotlib`.")


def pyplot():
    """``matplotlib.pyplot``, imported on first use (with an install hint when missing)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is a dependency
        raise ImportError(_INSTALL_HINT) from err
    return plt


def get_cmap(name):
    """A matplotlib colour map; ``"cold_hot"`` is the fMRI diverging map (nilearn's colours).

    ``cold_hot`` runs cyan - blue - black - red - yellow, so the sign of a z
    score reads as a hue and its size as brightness, as in nilearn's stat maps.
    """
    pyplot()
    import matplotlib as mpl
    from matplotlib.colors import Colormap, LinearSegmentedColormap

    if isinstance(name, Colormap):
        return name.copy()
    if name in ("cold_hot", "cold_hot_r"):
        colours = [(0.0, (0.0, 1.0, 1.0)), (0.25, (0.0, 0.0, 1.0)), (0.5, (0.0, 0.0, 0.0)),
                   (0.75, (1.0, 0.0, 0.0)), (1.0, (1.0, 1.0, 0.0))]
        cmap = LinearSegmentedColormap.from_list("cold_hot", colours, N=256)
        return cmap.reversed() if name.endswith("_r") else cmap
    return mpl.colormaps[name].copy()


def check_same_units(a, b, what="the map", other="the other units"):
    """Raise DataError unless two UnitSpaces describe the same units (None matches nothing)."""
    if a is b:
        return
    if a is None or b is None or not a == b:
        raise DataError(
            f"{what} and {other} are over different units ({a!r} and {b!r}): they come from "
            "another model or other sites. Plot a map with the units it was computed on "
            "(the UnitSpace of its own recording)."
        )


_STAT_NAMES = {"z_score": "z", "p_value": "p", "effect_size": "effect",
               "effect_variance": "variance", "mask": "in network"}


def resolve_map(obj, units=None, name="stat_map"):
    """(values of shape (n_units,), UnitSpace, label, name of the statistic) of a map.

    Parameters
    ----------
    obj : UnitMap, TaskMap, Network, dict from ``output_type="all"``, or array
        A TaskMap gives its z map; a Network its thresholded statistic (or 1/0).
    units : UnitSpace, optional
        Units of an array; for a map, they must be the map's own units.

    Raises
    ------
    DataError
        For a map without units, a 2-D map, an empty network, or units that
        differ from ``units``.
    TypeError
        For anything else.
    """
    if isinstance(obj, dict) and "z_score" in obj:
        obj = obj["z_score"]
    if isinstance(obj, TaskMap):
        obj = obj.z
    if isinstance(obj, Network):
        if obj.n_units == 0:
            raise DataError(
                f"The network {obj.label!r} is empty (0 of {obj.n_total} units), so there is "
                "nothing to plot; lower the threshold (a larger alpha, another correction) or "
                "take the top units with llmfmri.networks.top_k."
            )
        obj = obj.to_unit_map()
    if isinstance(obj, UnitMap):
        if obj.values.ndim != 1:
            raise DataError(
                f"{name} must hold one value per unit, but this UnitMap has shape "
                f"{obj.values.shape} (an F contrast's effects); plot its z_score or stat map."
            )
        if obj.units is None and units is None:
            raise DataError(
                f"{name} has no units (it was computed from a plain array), so it has no layers "
                "to plot; pass units=UnitSpace(...) (the recording's rec.units)."
            )
        if units is not None and obj.units is not None:
            check_same_units(obj.units, units, what=f"{name} ({obj.contrast or 'a map'})",
                             other="units")
        stat = obj.stat_type if obj.output_type == "stat" and obj.stat_type else \
            _STAT_NAMES.get(obj.output_type, obj.output_type)
        return (np.asarray(obj.values, dtype=float),
                obj.units if obj.units is not None else units, obj.contrast or "", stat)
    if isinstance(obj, (np.ndarray, list, tuple)):
        values = np.asarray(obj, dtype=float)
        if units is None:
            raise DataError(f"{name} is a plain array; pass units=UnitSpace(...) to lay it out.")
        if values.shape != (units.n_units,):
            raise DataError(f"{name} must have shape ({units.n_units},) to match units, but got "
                            f"shape {values.shape}.")
        return values, units, "", "value"
    raise TypeError(
        f"{name} must be a UnitMap, a TaskMap, a Network or an array with units, but got "
        f"{type(obj).__name__}."
    )


def threshold_values(values, threshold):
    """Values with ``|v| < threshold`` (and non-finite values) set to NaN (a copy)."""
    out = np.array(values, dtype=float, copy=True)
    out[~np.isfinite(out)] = np.nan
    if threshold is not None:
        threshold = float(threshold)
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold must be a finite number >= 0 or None, but got "
                             f"{threshold!r}.")
        with np.errstate(invalid="ignore"):
            out[np.abs(out) < threshold] = np.nan
    return out


def symmetric_vmax(values, threshold=None):
    """The colour limit: the largest finite |value| (at least the threshold; 1 when none)."""
    v = np.asarray(values, dtype=float)
    v = np.abs(v[np.isfinite(v)])
    vmax = float(v.max()) if v.size else 0.0
    if threshold is not None:
        vmax = max(vmax, float(threshold))
    return vmax if vmax > 0 else 1.0


def site_rows(units, values, fill=np.nan):
    """Values as an array of shape (n_sites, largest site size): one row per site, by index."""
    table = units.table
    width = max(units.site_sizes.values())
    out = np.full((len(units.sites), width), fill, dtype=float)
    out[table["k"].to_numpy(), table["index"].to_numpy()] = values
    return out


def row_labels(units):
    """One label per site: its layer, plus the component when several are recorded."""
    sites = units.table.drop_duplicates("site")[["site", "layer", "component"]]
    several = sites["component"].nunique() > 1
    return [f"{layer} {comp}" if several else f"{layer}"
            for layer, comp in zip(sites["layer"], sites["component"])]


def set_row_ticks(ax, labels, axis="y", max_ticks=32):
    """Tick every row (or every k-th when there are many) with its label."""
    n = len(labels)
    step = max(1, int(np.ceil(n / max_ticks)))
    ticks = np.arange(0, n, step)
    setter = ax.set_yticks if axis == "y" else ax.set_xticks
    setter(ticks, [labels[t] for t in ticks])
    ax.tick_params(axis=axis, labelsize="small" if n <= 16 else "x-small")


def panel_axes(ax, n_panels, *, ncols=None, figsize=None, sharex=False, sharey=False):
    """Axes for ``n_panels`` panels: new ones, a grid inside one bounding Axes, or given ones.

    Returns
    -------
    figure, axes (ndarray of shape (nrows, ncols)), bounding_ax (Axes or None)
    """
    plt = pyplot()
    if ncols is None:
        ncols = n_panels
    ncols = max(1, min(int(ncols), n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    if ax is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False,
                                 sharex=sharex, sharey=sharey, layout="constrained")
        return fig, axes, None
    if hasattr(ax, "get_subplotspec") and not isinstance(ax, np.ndarray):
        fig = ax.figure
        spec = ax.get_subplotspec()
        if spec is None:
            raise ValueError("ax must be a subplot (made with plt.subplots or add_subplot) to "
                             "hold a grid of panels, or a list of Axes.")
        ax.set_axis_off()
        grid = spec.subgridspec(nrows, ncols)
        axes = np.empty((nrows, ncols), dtype=object)
        for r in range(nrows):
            for c in range(ncols):
                axes[r, c] = fig.add_subplot(grid[r, c])
        return fig, axes, ax
    axes = np.asarray(ax, dtype=object).ravel()
    if axes.size < n_panels:
        raise ValueError(f"ax holds {axes.size} Axes but {n_panels} panels are drawn; pass "
                         f"at least {n_panels} Axes, one Axes to split, or ax=None.")
    return axes[0].figure, axes.reshape(1, -1), None


def add_note(target, text):
    """A grey note in the middle of an Axes or a Figure (e.g. "no unit reaches |z| >= 9")."""
    transform = getattr(target, "transAxes", None) or target.transFigure
    return target.text(0.5, 0.5, text, transform=transform, ha="center", va="center",
                       fontsize="small", color="0.25", wrap=True,
                       bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6",
                             "alpha": 0.9})


def add_colorbar(fig, mappable, ax, *, label=None, threshold=None, **kwargs):
    """A colour bar for ``mappable``; the band ``|v| < threshold`` is greyed out (nilearn)."""
    cbar = fig.colorbar(mappable, ax=ax, **kwargs)
    if label:
        cbar.set_label(label)
    if threshold:
        lo, hi = mappable.get_clim()
        a, b = max(-float(threshold), lo), min(float(threshold), hi)
        if b > a:
            if cbar.orientation == "vertical":
                cbar.ax.axhspan(a, b, color=BACKGROUND, zorder=3)
            else:
                cbar.ax.axvspan(a, b, color=BACKGROUND, zorder=3)
    cbar.ax.tick_params(labelsize="small")
    return cbar


class Display:
    """Base of llmfmri's Display objects (scikit-learn's pattern).

    A ``from_*`` class method computes what is drawn, once; :meth:`plot`
    draws it on new or given Axes, stores the artists (``ax_``, ``figure_``...)
    and returns the Display, so ``plot_*(...)`` functions are
    ``Display.from_*(...).plot(...)``.
    """

    def _axes(self, ax, figsize):
        plt = pyplot()
        if ax is None:
            fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return ax.figure, ax

    def __repr__(self):
        drawn = "drawn" if hasattr(self, "figure_") else "not drawn"
        return f"<{type(self).__name__} ({drawn})>"
