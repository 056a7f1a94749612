"""Network: a set of units over a UnitSpace, that knows how it was defined."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_option
from ..exceptions import DataError
from ..glm import INFERENCES, UnitMap

__all__ = ["Network", "check_same_units", "check_compatible", "site_strata"]

_RULES = ("threshold", "height", "top_k", "random", "set")


def check_same_units(a, b, what="networks"):
    """Raise DataError unless two UnitSpaces (or None) describe the same units."""
    ua, ub = a, b
    if ua is ub:
        return
    if ua is None or ub is None or ua.n_units != ub.n_units or not ua == ub:
        def show(u):
            return "no units" if u is None else repr(u)
        raise DataError(
            f"The {what} are over different units ({show(ua)} and {show(ub)}); compare "
            "networks from maps of the same recording and sites."
        )


def check_compatible(a, b):
    """Raise DataError unless two networks are over the same units (and of the same size)."""
    check_same_units(a.units, b.units)
    if a.n_total != b.n_total:
        raise DataError(f"The networks have masks of different sizes ({a.n_total} and "
                        f"{b.n_total} units).")


def site_strata(units, n_units):
    """Stratum code (one per site) of every unit, and the site names; one stratum without units."""
    if units is None:
        return np.zeros(n_units, dtype=np.int64), ["all"]
    codes, sites = pd.factorize(units.table["site"], sort=False)
    return codes.astype(np.int64), [str(s) for s in sites]


def _fmt(x):
    return f"{x:g}".replace(".", "p").replace("-", "m")


class Network:
    """A set of units (a boolean mask over a UnitSpace) and how it was defined.

    Networks are made by :func:`threshold`, :func:`top_k`,
    :func:`random_network` or set operations (``a & b``, ``a | b``, ``a - b``);
    they are read-only.

    Parameters
    ----------
    mask : array of bool, shape (n_total,)
        True for the units in the network.
    units : UnitSpace, optional
        The units the mask is over (needed for layer profiles, NIfTI and
        layer-matched tests).
    label : str, optional
        Name used in tables and file names (default: the contrast).
    contrast : str, optional
        Source contrast.
    inference : str, optional
        How the source map was made (a key of ``llmfmri.glm.INFERENCES``).
    rule : {"threshold", "height", "top_k", "random", "set"}, default="threshold"
    tail : {"positive", "negative", "two-sided"}, optional
    alpha, correction, height, fraction, k, per_layer
        The threshold: ``alpha`` with ``correction`` (``"fdr"``,
        ``"bonferroni"``, ``"maxt"`` or None), a ``height`` on the statistic,
        or the ``k`` / ``fraction`` of top units (``per_layer``).
    stat_map : UnitMap, optional
        The statistic the network was cut from (z), kept for conjunctions,
        identification weights and :meth:`to_unit_map`.

    Attributes
    ----------
    mask : ndarray of bool, shape (n_total,)
    n_units : int
        Units in the network.
    n_total : int
        Units of the space.
    columns : ndarray of int
        Columns of the network's units (as ``UnitSpace.select`` returns).

    Examples
    --------
    >>> from llmfmri.units import UnitSpace
    >>> from llmfmri.networks import Network
    >>> space = UnitSpace({"layers.0.resid_post": 4, "layers.1.resid_post": 4})
    >>> a = Network([1, 1, 0, 0, 1, 0, 0, 0], space, label="a")
    >>> b = Network([0, 1, 1, 0, 1, 1, 0, 0], space, label="b")
    >>> (a & b).columns.tolist(), (a | b).n_units, (a - b).n_units
    ([1, 4], 5, 1)
    >>> a.layer_profile()[["site", "n_units", "fraction"]]
                      site  n_units  fraction
    0  layers.0.resid_post        2      0.50
    1  layers.1.resid_post        1      0.25
    """

    def __init__(self, mask, units=None, *, label=None, contrast=None, inference=None,
                 rule="threshold", tail="positive", alpha=None, correction=None, height=None,
                 fraction=None, k=None, per_layer=False, stat_map=None):
        mask = np.asarray(mask)
        if mask.ndim != 1:
            raise DataError(f"mask must be 1-D (one entry per unit), but got shape {mask.shape}.")
        if mask.dtype != bool:
            if not np.isin(mask, (0, 1)).all():
                raise DataError("mask must hold booleans (or 0/1), but got other values.")
            mask = mask.astype(bool)
        mask = mask.copy()
        mask.setflags(write=False)
        if units is not None and getattr(units, "n_units", None) != mask.size:
            raise DataError(
                f"mask has {mask.size} entries but units has {getattr(units, 'n_units', None)}."
            )
        check_option("rule", rule, _RULES)
        if inference is not None:
            check_option("inference", inference, tuple(INFERENCES))
        if stat_map is not None and stat_map.n_units != mask.size:
            raise DataError(
                f"stat_map has {stat_map.n_units} units but mask has {mask.size}."
            )
        self._mask = mask
        self.units = units
        self.contrast = contrast
        self.label = str(label if label is not None else (contrast or "network"))
        self.inference = inference
        self.rule = rule
        self.tail = tail
        self.alpha = alpha
        self.correction = correction
        self.height = height
        self.fraction = fraction
        self.k = k
        self.per_layer = bool(per_layer)
        self.stat_map = stat_map

    # ------------------------------------------------------------------ basics
    @property
    def mask(self):
        """Boolean mask over the units (read-only), shape (n_total,)."""
        return self._mask

    @property
    def n_units(self):
        """Number of units in the network."""
        return int(self._mask.sum())

    @property
    def n_total(self):
        """Number of units of the space."""
        return int(self._mask.size)

    @property
    def columns(self):
        """Columns (indices into the recording's units) of the network's units."""
        return np.flatnonzero(self._mask)

    def __len__(self):
        return self.n_units

    @property
    def desc(self):
        """BIDS ``desc`` label of the threshold, e.g. ``fdr0p05``, ``top1pctPerLayer``."""
        if self.rule == "threshold":
            text = f"{self.correction or 'uncorrected'}{_fmt(self.alpha)}"
        elif self.rule == "height":
            text = f"height{_fmt(self.height)}"
        elif self.rule == "top_k":
            text = (f"top{_fmt(100 * self.fraction)}pct" if self.fraction is not None
                    else f"top{self.k}")
            text += "PerLayer" if self.per_layer else ""
        else:
            text = self.rule
        if self.tail == "negative":
            text += "Neg"
        elif self.tail == "two-sided":
            text += "Abs"
        return text

    def describe(self):
        """One line: size, threshold and inference, e.g. for a report."""
        if self.rule == "threshold":
            corr = {"fdr": "FDR q", "bonferroni": "Bonferroni p", "maxt": "max-T FWER p",
                    None: "uncorrected p"}[self.correction]
            how = f"{corr} <= {self.alpha:g}"
        elif self.rule == "height":
            how = f"|stat| >= {self.height:g}" if self.tail == "two-sided" else \
                f"stat {'>=' if self.tail == 'positive' else '<= -'}{self.height:g}"
        elif self.rule == "top_k":
            size = (f"top {100 * self.fraction:g}%" if self.fraction is not None
                    else f"top {self.k}")
            how = size + (" per layer" if self.per_layer else "")
        else:
            how = self.rule
        bits = [f"{self.label}: {self.n_units} of {self.n_total} units", how]
        if self.tail and self.rule != "set":
            bits.append(f"{self.tail} tail")
        if self.inference:
            bits.append(INFERENCES[self.inference])
        return "; ".join(bits)

    def __repr__(self):
        bits = [repr(self.label), f"n_units={self.n_units}", f"n_total={self.n_total}",
                f"desc={self.desc!r}"]
        if self.inference:
            bits.append(f"inference={self.inference!r}")
        return "Network(" + ", ".join(bits) + ")"

    # ------------------------------------------------------------ set algebra
    def _combine(self, other, op, symbol):
        if not isinstance(other, Network):
            raise TypeError(
                f"Networks combine with networks only, but got {type(other).__name__} after "
                f"{symbol!r}; wrap a mask as Network(mask, units)."
            )
        check_compatible(self, other)
        inference = self.inference if self.inference == other.inference else None
        return Network(op(self._mask, other._mask), self.units,
                       label=f"({self.label} {symbol} {other.label})", inference=inference,
                       rule="set", tail=None)

    def __and__(self, other):
        return self._combine(other, np.logical_and, "&")

    def __or__(self, other):
        return self._combine(other, np.logical_or, "|")

    def __sub__(self, other):
        return self._combine(other, lambda a, b: a & ~b, "-")

    # ----------------------------------------------------------------- tables
    def _require_units(self, what):
        if self.units is None:
            raise DataError(
                f"{what} needs the network's UnitSpace, but this network has none (it was made "
                "from a plain array); pass units=UnitSpace(...) when mapping."
            )

    def layer_profile(self):
        """Units of the network per layer and site.

        Returns
        -------
        pandas.DataFrame
            One row per site: ``site, layer, component, n_units`` (in the
            network), ``n_total`` (units of the site), ``fraction``
            (``n_units / n_total``) and ``share`` (of the network's units).

        Raises
        ------
        DataError
            When the network has no UnitSpace.
        """
        self._require_units("layer_profile")
        table = self.units.table
        sites = table.drop_duplicates("site")[["site", "layer", "component"]]
        counts = pd.Series(self._mask).groupby(table["site"].to_numpy(), sort=False)
        df = sites.reset_index(drop=True)
        df["n_units"] = df["site"].map(counts.sum()).astype(int)
        df["n_total"] = df["site"].map(counts.size()).astype(int)
        df["fraction"] = df["n_units"] / df["n_total"]
        total = max(self.n_units, 1)
        df["share"] = df["n_units"] / total
        return df

    def to_frame(self):
        """One row per unit of the network: ``column, site, layer, component, index`` (+ ``stat``).

        ``stat`` is the source statistic (z) of the unit, when known.
        """
        cols = self.columns
        if self.units is not None:
            df = self.units.table.iloc[cols][["column", "site", "layer", "component",
                                              "index"]].reset_index(drop=True)
        else:
            df = pd.DataFrame({"column": cols})
        if self.stat_map is not None:
            df["stat"] = np.asarray(self.stat_map.values)[cols]
        return df

    def to_unit_map(self):
        """The network as a UnitMap.

        Returns
        -------
        UnitMap
            The source statistic inside the network and 0 outside (as
            nilearn's ``threshold_stats_img`` returns a thresholded map) when
            the network knows its statistic; otherwise a 1/0 indicator with
            ``output_type="mask"``.
        """
        if self.stat_map is not None:
            values = np.where(self._mask, self.stat_map.values, 0.0)
            return self.stat_map._replace(values, contrast=self.label)
        return UnitMap(self._mask.astype(np.float64), self.units, output_type="mask",
                       contrast=self.label, inference=self.inference)

    def to_nifti(self):
        """The mask as a ``nibabel.Nifti1Image`` of uint8 (1 in the network).

        Raises
        ------
        DataError
            When the network has no UnitSpace.
        """
        import nibabel as nib

        self._require_units("to_nifti")
        vol = self.units.to_volume(self._mask.astype(np.uint8), fill=0).astype(np.uint8)
        img = nib.Nifti1Image(vol, self.units.affine)
        img.header.set_xyzt_units(xyz="mm")
        img.header["descrip"] = f"network {self.label} ({self.desc})"[:79].encode(
            "ascii", "replace")
        return img

    def summary(self):
        """One row describing the network (the ``networks.tsv`` line), as a dict."""
        return {"label": self.label, "contrast": self.contrast, "inference": self.inference,
                "rule": self.rule, "correction": self.correction, "alpha": self.alpha,
                "height": self.height, "fraction": self.fraction, "k": self.k,
                "per_layer": self.per_layer, "tail": self.tail, "n_units": self.n_units,
                "n_total": self.n_total, "desc": self.desc}

    def save(self, out_dir, *, task=None, overwrite=False):
        """Write the mask (``_mask.nii.gz``) and the unit table (``_units.tsv``).

        Names come from :func:`llmfmri.io.network_stem`:
        ``[task-<t>_]contrast-<label>_desc-<threshold>_mask.nii.gz``.

        Parameters
        ----------
        out_dir : str or Path
        task : str, optional
            The paradigm, added as a ``task-`` entity.
        overwrite : bool, default=False

        Returns
        -------
        list of pathlib.Path

        Raises
        ------
        FileExistsError
            When a file exists and ``overwrite`` is False (nothing is written).
        """
        from ._io import save_networks

        return save_networks([self], out_dir, task=task, overwrite=overwrite, table=False)
