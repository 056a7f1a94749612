"""Maps on units: the layers x units image, the slice mosaic and the glass network."""

from __future__ import annotations

import numpy as np

from ..networks import Network
from ._base import (BACKGROUND, NO_UNIT, Display, add_colorbar, add_note, get_cmap, panel_axes,
                    resolve_map, row_labels, set_row_ticks, site_rows, symmetric_vmax,
                    threshold_values)

__all__ = ["UnitMapDisplay", "MosaicDisplay", "GlassDisplay", "plot_unit_map", "plot_mosaic",
           "plot_glass_network"]


def _prepare(stat_map, threshold, units, name="stat_map"):
    """(shown values (NaN = blank), all values, units, label, statistic name)."""
    values, units, label, stat = resolve_map(stat_map, units, name=name)
    shown = threshold_values(values, threshold)
    if isinstance(stat_map, Network):  # units outside the network are blank, whatever their 0
        shown[~stat_map.mask] = np.nan
        label = stat_map.label
    return shown, values, units, label, stat


def _summary(shown, stat, threshold, n_total):
    n = int(np.isfinite(shown).sum())
    cut = f"|{stat}| \u2265 {threshold:g}: " if threshold is not None else ""
    return f"{cut}{n:,} of {n_total:,} units"


def _empty_note(values, stat, threshold):
    finite = np.abs(values[np.isfinite(values)])
    largest = f" (largest |{stat}| = {finite.max():.3g})" if finite.size else ""
    if threshold is None:
        return "no finite value to show"
    return f"no unit reaches |{stat}| \u2265 {threshold:g}{largest}"


def _background(ax, present, origin):
    from matplotlib.colors import ListedColormap

    return ax.imshow(present.astype(float), cmap=ListedColormap([NO_UNIT, BACKGROUND]),
                     vmin=0, vmax=1, origin=origin, aspect="auto", interpolation="nearest")


def _data_cmap(cmap):
    return get_cmap(cmap).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))


class UnitMapDisplay(Display):
    """A map on units as a layers x units image: one row per layer (site), one column per unit.

    Units whose ``|value|`` is below the threshold are blank (light grey), the
    colour map is diverging and symmetric about 0, and rows are ticked with
    their layer. Build it with :meth:`from_map` (or :func:`plot_unit_map`).

    Parameters
    ----------
    rows : ndarray of shape (n_sites, max_site_size)
        Values shown (NaN: blank), row ``k`` = the ``k``-th site, column = unit index.
    present : ndarray of bool, same shape
        Where a unit exists (sites of different sizes or recorded subsets leave gaps).
    row_labels : list of str
        The layer (and component) of each row.
    vmax : float
        Colour limits are ``(-vmax, vmax)``.
    threshold : float or None
    stat : str
        Name of the statistic (``"z"``, ``"t"``...), for the colour bar.
    title : str
    subtitle : str
        What is shown, e.g. ``"|z| >= 3: 1,201 of 17,280 units"``.
    note : str or None
        Shown in the middle of an empty image (nothing above the threshold).

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    image_ : matplotlib AxesImage
        The data layer (a masked array: blank units are masked).
    background_ : matplotlib AxesImage
        Grey where a unit exists, white where none does.
    colorbar_ : matplotlib Colorbar or None
    note_ : matplotlib Text or None

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.units import UnitSpace
    >>> from llmfmri.glm import UnitMap
    >>> from llmfmri.plotting import UnitMapDisplay
    >>> space = UnitSpace({f"layers.{k}.resid_post": 16 for k in range(3)})
    >>> z = UnitMap(np.linspace(-4, 4, 48), space)
    >>> disp = UnitMapDisplay.from_map(z, threshold=2.0).plot()   # doctest: +SKIP
    >>> disp.image_.get_array().mask.sum()                          # doctest: +SKIP
    24
    """

    def __init__(self, rows, present, *, row_labels, vmax, threshold=None, stat="z", title="",
                 subtitle="", note=None):
        self.rows = rows
        self.present = present
        self.row_labels = list(row_labels)
        self.vmax = float(vmax)
        self.threshold = threshold
        self.stat = stat
        self.title = title
        self.subtitle = subtitle
        self.note = note

    @classmethod
    def from_map(cls, stat_map, *, threshold=None, units=None, vmax=None, title=None):
        """Compute the image of a map.

        Parameters
        ----------
        stat_map : UnitMap, TaskMap or Network
            A z (or t) map with its UnitSpace; a TaskMap shows its z map; a
            Network its statistic inside the network (or 1 in it).
        threshold : float, optional
            Blank units with ``|value| < threshold``. A threshold above every
            value gives an empty, labelled image with a note.
        units : UnitSpace, optional
            The units the map must be over (e.g. ``rec.units``), or the units
            of a plain array.
        vmax : float, optional
            Colour limit (default: the largest ``|value|``).
        title : str, optional
            Default: the contrast (or network label).

        Returns
        -------
        UnitMapDisplay

        Raises
        ------
        DataError
            For a map without units, over other units than ``units``, or an
            empty network.
        """
        shown, values, units, label, stat = _prepare(stat_map, threshold, units)
        vmax = symmetric_vmax(values, threshold) if vmax is None else float(vmax)
        present = site_rows(units, np.ones(units.n_units), fill=0.0) > 0
        n_shown = int(np.isfinite(shown).sum())
        return cls(site_rows(units, shown), present, row_labels=row_labels(units), vmax=vmax,
                   threshold=threshold, stat=stat, title=label if title is None else title,
                   subtitle=_summary(shown, stat, threshold, units.n_units),
                   note=None if n_shown else _empty_note(values, stat, threshold))

    def plot(self, ax=None, *, cmap="cold_hot", colorbar=True, title=None):
        """Draw the image.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Default: a new figure.
        cmap : str or Colormap, default="cold_hot"
            A diverging colour map (limits are symmetric about 0).
        colorbar : bool, default=True
        title : str, optional
            Replaces the title (the subtitle stays).

        Returns
        -------
        self
        """
        n_rows = self.rows.shape[0]
        fig, ax = self._axes(ax, figsize=(8.0, min(1.6 + 0.17 * n_rows, 9.0)))
        self.background_ = _background(ax, self.present, "lower")
        self.image_ = ax.imshow(np.ma.masked_invalid(self.rows), cmap=_data_cmap(cmap),
                                vmin=-self.vmax, vmax=self.vmax, origin="lower", aspect="auto",
                                interpolation="nearest")
        set_row_ticks(ax, self.row_labels)
        ax.set_ylabel("layer")
        ax.set_xlabel("unit (index within the layer)")
        title = self.title if title is None else title
        ax.set_title("\n".join(t for t in (title, self.subtitle) if t), fontsize="medium")
        self.colorbar_ = add_colorbar(fig, self.image_, ax, label=self.stat,
                                      threshold=self.threshold, fraction=0.04,
                                      pad=0.02) if colorbar else None
        self.note_ = add_note(ax, self.note) if self.note else None
        self.ax_, self.figure_ = ax, fig
        return self


def _grid_shape(n, ncols=None):
    if ncols is None:
        ncols = int(min(n, max(1, round(np.sqrt(n * 1.3)))))
    return int(ncols), int(np.ceil(n / ncols))


class MosaicDisplay(Display):
    """The slice mosaic: one panel per layer, the layer's units folded into a 2-D grid.

    This is the layout of llmfmri's NIfTI maps (:meth:`UnitSpace.to_volume`:
    576 units of a layer fold into 24 x 24, unit ``index`` at row
    ``index // 24``, column ``index % 24``, read left to right, top to bottom),
    shown as an fMRI slice mosaic with one colour scale for every panel.
    Build it with :meth:`from_map` (or :func:`plot_mosaic`).

    Attributes
    ----------
    axes_ : ndarray of Axes, shape (n_rows, n_cols)
        One per panel (unused ones are switched off).
    bounding_ax_ : Axes or None
        The Axes given to :meth:`plot` that the grid was drawn in.
    figure_ : Figure
    images_ : list of AxesImage
        The data layer of each panel (masked arrays).
    colorbar_ : Colorbar or None
    note_ : Text or None
    """

    def __init__(self, volume, present, *, panel_labels, vmax, threshold=None, stat="z",
                 title="", subtitle="", note=None):
        self.volume = volume
        self.present = present
        self.panel_labels = list(panel_labels)
        self.vmax = float(vmax)
        self.threshold = threshold
        self.stat = stat
        self.title = title
        self.subtitle = subtitle
        self.note = note

    @classmethod
    def from_map(cls, stat_map, *, threshold=None, units=None, vmax=None, title=None):
        """Compute the mosaic of a map (parameters as :meth:`UnitMapDisplay.from_map`)."""
        shown, values, units, label, stat = _prepare(stat_map, threshold, units)
        vmax = symmetric_vmax(values, threshold) if vmax is None else float(vmax)
        n_shown = int(np.isfinite(shown).sum())
        labels = [f"layer {lab}" for lab in row_labels(units)]
        return cls(units.to_volume(shown, fill=np.nan), units.mask(), panel_labels=labels,
                   vmax=vmax, threshold=threshold, stat=stat,
                   title=label if title is None else title,
                   subtitle=_summary(shown, stat, threshold, units.n_units),
                   note=None if n_shown else _empty_note(values, stat, threshold))

    def plot(self, ax=None, *, ncols=None, cmap="cold_hot", colorbar=True, title=None):
        """Draw one panel per layer.

        Parameters
        ----------
        ax : Axes or array of Axes, optional
            None: a new figure; one Axes: the grid is drawn inside it; several:
            one per panel.
        ncols : int, optional
            Panels per row (default: a near-square grid).
        cmap : str or Colormap, default="cold_hot"
        colorbar : bool, default=True
        title : str, optional

        Returns
        -------
        self
        """
        n = self.volume.shape[2]
        ncols, nrows = _grid_shape(n, ncols)
        fig, axes, bounding = panel_axes(ax, n, ncols=ncols,
                                         figsize=(1.3 * ncols + 1.2, 1.3 * nrows + 0.8))
        cmap = _data_cmap(cmap)
        images = []
        for k, a in enumerate(axes.ravel()):
            if k >= n:
                a.set_axis_off()
                continue
            a.imshow(self.present[:, :, k].astype(float), cmap=_background_cmap(), vmin=0,
                     vmax=1, interpolation="nearest")
            images.append(a.imshow(np.ma.masked_invalid(self.volume[:, :, k]), cmap=cmap,
                                   vmin=-self.vmax, vmax=self.vmax, interpolation="nearest"))
            a.set_title(self.panel_labels[k], fontsize="x-small", pad=2)
            a.set_xticks([])
            a.set_yticks([])
        title = self.title if title is None else title
        head = "\n".join(t for t in (title, self.subtitle) if t)
        if bounding is not None:
            bounding.set_title(head, fontsize="medium")
        elif head:
            fig.suptitle(head, fontsize="medium")
        used = [a for a in axes.ravel()[:n]]
        self.colorbar_ = add_colorbar(fig, images[0], used, label=self.stat,
                                      threshold=self.threshold, shrink=0.6,
                                      fraction=0.05) if colorbar else None
        self.note_ = add_note(bounding if bounding is not None else fig, self.note) \
            if self.note else None
        self.axes_, self.bounding_ax_, self.figure_, self.images_ = axes, bounding, fig, images
        return self


def _background_cmap():
    from matplotlib.colors import ListedColormap

    return ListedColormap([NO_UNIT, BACKGROUND])


def _mip(volume, axis):
    """Signed maximum-intensity projection: the value of largest |v| along ``axis`` (NaN-aware)."""
    finite = np.isfinite(volume)
    score = np.where(finite, np.abs(np.nan_to_num(volume)), -1.0)
    idx = np.expand_dims(np.argmax(score, axis=axis), axis)
    out = np.take_along_axis(volume, idx, axis=axis).squeeze(axis)
    out[~finite.any(axis=axis)] = np.nan
    return out


class GlassDisplay(Display):
    """The glass network: maximum-intensity projections of the unit volume along each axis.

    As nilearn's glass brain shows the strongest voxel along each line of
    sight, this shows the strongest unit (largest ``|value|``, sign kept)
    across layers (on the folded unit grid), across grid rows and across grid
    columns (layer against grid position). Build it with :meth:`from_map`
    (or :func:`plot_glass_network`).

    Attributes
    ----------
    axes_ : ndarray of 3 Axes
    figure_ : Figure
    images_ : list of 3 AxesImage
    colorbar_ : Colorbar or None
    note_ : Text or None
    """

    _PANELS = (("max over layers", "grid column", "grid row"),
               ("max over grid rows", "grid column", "layer"),
               ("max over grid columns", "grid row", "layer"))

    def __init__(self, projections, presents, *, row_labels, vmax, threshold=None, stat="z",
                 title="", subtitle="", note=None, plot_abs=False):
        self.projections = projections
        self.presents = presents
        self.row_labels = list(row_labels)
        self.vmax = float(vmax)
        self.threshold = threshold
        self.stat = stat
        self.title = title
        self.subtitle = subtitle
        self.note = note
        self.plot_abs = bool(plot_abs)

    @classmethod
    def from_map(cls, stat_map, *, threshold=None, units=None, vmax=None, title=None,
                 plot_abs=False):
        """Compute the three projections (parameters as :meth:`UnitMapDisplay.from_map`).

        plot_abs : bool, default=False
            Project ``|value|`` (one-signed colour map) instead of the signed value.
        """
        shown, values, units, label, stat = _prepare(stat_map, threshold, units)
        if plot_abs:
            shown = np.abs(shown)
        vmax = symmetric_vmax(values, threshold) if vmax is None else float(vmax)
        vol = units.to_volume(shown, fill=np.nan)
        mask = units.mask()
        projections = [_mip(vol, 2), _mip(vol, 0).T, _mip(vol, 1).T]
        presents = [mask.any(axis=2), mask.any(axis=0).T, mask.any(axis=1).T]
        n_shown = int(np.isfinite(shown).sum())
        return cls(projections, presents, row_labels=row_labels(units), vmax=vmax,
                   threshold=threshold, stat=f"|{stat}|" if plot_abs else stat,
                   title=label if title is None else title,
                   subtitle=_summary(shown, stat, threshold, units.n_units),
                   note=None if n_shown else _empty_note(values, stat, threshold),
                   plot_abs=plot_abs)

    def plot(self, ax=None, *, cmap=None, colorbar=True, title=None):
        """Draw the three projections side by side.

        Parameters
        ----------
        ax : Axes or array of 3 Axes, optional
        cmap : str or Colormap, optional
            Default ``"cold_hot"`` (``"hot"`` with ``plot_abs=True``).
        colorbar : bool, default=True
        title : str, optional

        Returns
        -------
        self
        """
        fig, axes, bounding = panel_axes(ax, 3, ncols=3, figsize=(12.0, 3.9))
        cmap = _data_cmap(cmap or ("hot" if self.plot_abs else "cold_hot"))
        lo = 0.0 if self.plot_abs else -self.vmax
        images = []
        for k, (a, proj, present, (name, xlabel, ylabel)) in enumerate(
                zip(axes.ravel(), self.projections, self.presents, self._PANELS)):
            origin = "upper" if k == 0 else "lower"
            a.imshow(present.astype(float), cmap=_background_cmap(), vmin=0, vmax=1,
                     origin=origin, aspect="auto", interpolation="nearest")
            images.append(a.imshow(np.ma.masked_invalid(proj), cmap=cmap, vmin=lo,
                                   vmax=self.vmax, origin=origin, aspect="auto",
                                   interpolation="nearest"))
            a.set_title(name, fontsize="small")
            a.set_xlabel(xlabel, fontsize="small")
            a.set_ylabel(ylabel, fontsize="small")
            a.tick_params(labelsize="x-small")
            if k > 0:
                set_row_ticks(a, self.row_labels, max_ticks=16)
        title = self.title if title is None else title
        head = "\n".join(t for t in (title, self.subtitle) if t)
        if bounding is not None:
            bounding.set_title(head, fontsize="medium")
        elif head:
            fig.suptitle(head, fontsize="medium")
        self.colorbar_ = add_colorbar(fig, images[0], list(axes.ravel()[:3]), label=self.stat,
                                      threshold=None if self.plot_abs else self.threshold,
                                      fraction=0.03, pad=0.01) if colorbar else None
        self.note_ = add_note(bounding if bounding is not None else fig, self.note) \
            if self.note else None
        self.axes_, self.bounding_ax_, self.figure_, self.images_ = axes, bounding, fig, images
        return self


def plot_unit_map(stat_map, *, threshold=None, units=None, vmax=None, title=None, ax=None,
                  cmap="cold_hot", colorbar=True):
    """Plot a map as a layers x units image (see :class:`UnitMapDisplay`).

    Parameters
    ----------
    stat_map : UnitMap, TaskMap or Network
    threshold : float, optional
        Blank units with ``|value| < threshold``.
    units : UnitSpace, optional
        Units the map must be over (or the units of a plain array).
    vmax, title, ax, cmap, colorbar
        See :meth:`UnitMapDisplay.from_map` and :meth:`UnitMapDisplay.plot`.

    Returns
    -------
    UnitMapDisplay
    """
    return UnitMapDisplay.from_map(stat_map, threshold=threshold, units=units, vmax=vmax,
                                   title=title).plot(ax=ax, cmap=cmap, colorbar=colorbar)


def plot_mosaic(stat_map, *, threshold=None, units=None, vmax=None, title=None, ax=None,
                ncols=None, cmap="cold_hot", colorbar=True):
    """Plot a map as a slice mosaic, one panel per layer (see :class:`MosaicDisplay`).

    Returns
    -------
    MosaicDisplay
    """
    return MosaicDisplay.from_map(stat_map, threshold=threshold, units=units, vmax=vmax,
                                  title=title).plot(ax=ax, ncols=ncols, cmap=cmap,
                                                    colorbar=colorbar)


def plot_glass_network(stat_map, *, threshold=None, units=None, vmax=None, title=None,
                       plot_abs=False, ax=None, cmap=None, colorbar=True):
    """Plot maximum-intensity projections of a map (see :class:`GlassDisplay`).

    Returns
    -------
    GlassDisplay
    """
    return GlassDisplay.from_map(stat_map, threshold=threshold, units=units, vmax=vmax,
                                 title=title, plot_abs=plot_abs).plot(ax=ax, cmap=cmap,
                                                                      colorbar=colorbar)
