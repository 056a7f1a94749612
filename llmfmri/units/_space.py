"""UnitSpace: the one object that knows where a unit lives."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._utils import did_you_mean
from ._sites import SiteError, format_site, parse_site

_COMPONENT_ORDER = {"embed": 0, "resid_post": 1, "attn_out": 2, "mlp_out": 3, "mlp_act": 4}
#: NIfTI-1 stores each dimension as a 16-bit signed integer; NIfTI-2 uses 64 bits
NIFTI1_MAX_DIM = 32767
_TABLE_COLUMNS = ["column", "site", "layer", "component", "index", "i", "j", "k"]


def fold_size(n):
    """Fold ``n`` units into a near-square 2-D grid ``(nx, ny)`` with ``nx >= ny``.

    An exact factorisation with aspect ratio at most 2 is preferred (768 -> 32 x 24,
    576 -> 24 x 24); otherwise a square of side ``ceil(sqrt(n))``.

    Examples
    --------
    >>> from llmfmri.units._space import fold_size
    >>> fold_size(768)
    (32, 24)
    >>> fold_size(576)
    (24, 24)
    """
    n = int(n)
    if n <= 0:
        raise ValueError(f"Cannot fold {n} units into a grid; expected a positive count.")
    for ny in range(int(math.isqrt(n)), 0, -1):
        if n % ny == 0:
            nx = n // ny
            if nx <= 2 * ny:
                return nx, ny
            break
    side = math.isqrt(n - 1) + 1
    return side, side


class UnitSpace:
    """Units of a recording: (site, layer, component, index) and their voxels.

    A unit is one coordinate of one site's output. Columns of a recording's
    ``(n_frames, n_units)`` array follow the order of :attr:`table`. For NIfTI
    the units are laid out as a volume: one z-slice per site (sites ordered by
    component then layer), each slice a 2-D grid that folds the site's hidden
    dimension (768 -> 32 x 24). Voxels that hold no unit are outside the mask.

    Parameters
    ----------
    site_sizes : mapping of str to int
        Full size (hidden dimension) of each recorded site, e.g.
        ``{"layers.0.resid_post": 576}``. Sites are ordered by component, then layer.
    indices : mapping of str to array of int, optional
        Recorded subset of each site's indices (all by default).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per unit: ``column, site, layer, component, index, i, j, k``.

    Examples
    --------
    >>> from llmfmri.units import UnitSpace
    >>> space = UnitSpace({"layers.0.resid_post": 6, "layers.1.resid_post": 6})
    >>> space.n_units, space.shape
    (12, (3, 2, 2))
    >>> space.select(layers=1).tolist()
    [6, 7, 8, 9, 10, 11]
    """

    def __init__(self, site_sizes, indices=None):
        if not isinstance(site_sizes, Mapping) or not site_sizes:
            raise ValueError(
                "site_sizes must be a non-empty mapping of site name to size, "
                f"e.g. {{'layers.0.resid_post': 576}}, but got {site_sizes!r}."
            )
        parsed = {}
        for site, size in site_sizes.items():
            layer, component = parse_site(site)
            if int(size) <= 0:
                raise ValueError(f"Site {site!r} has size {size}; expected a positive integer.")
            parsed[site] = (layer, component, int(size))
        self.site_sizes = {
            s: parsed[s][2]
            for s in sorted(parsed, key=lambda s: (_COMPONENT_ORDER[parsed[s][1]], parsed[s][0]))
        }
        indices = dict(indices or {})
        unknown = set(indices) - set(self.site_sizes)
        if unknown:
            bad = sorted(unknown)[0]
            raise SiteError(
                f"indices names site {bad!r}, which is not among the recorded sites "
                f"{list(self.site_sizes)}." + did_you_mean(bad, self.site_sizes)
            )
        self.grid = fold_size(max(self.site_sizes.values()))
        nx, ny = self.grid
        rows = []
        for k, (site, size) in enumerate(self.site_sizes.items()):
            layer, component, _ = parsed[site]
            idx = indices.get(site)
            if idx is None:
                idx = np.arange(size)
            else:
                idx = np.asarray(idx, dtype=np.int64).ravel()
                if idx.size == 0:
                    raise ValueError(f"indices for site {site!r} is empty; drop the site instead.")
                if idx.min() < 0 or idx.max() >= size:
                    raise ValueError(
                        f"indices for site {site!r} must lie in [0, {size}), "
                        f"but range over [{idx.min()}, {idx.max()}]."
                    )
                if np.unique(idx).size != idx.size:
                    raise ValueError(f"indices for site {site!r} contain duplicates.")
            rows.append(pd.DataFrame({
                "site": site, "layer": layer, "component": component, "index": idx,
                "i": idx // ny, "j": idx % ny, "k": k,
            }))
        table = pd.concat(rows, ignore_index=True)
        table.insert(0, "column", np.arange(len(table)))
        self.table = table[_TABLE_COLUMNS]
        self.shape = (nx, ny, len(self.site_sizes))

    # ------------------------------------------------------------------ basics
    @property
    def n_units(self):
        """Number of units (columns)."""
        return len(self.table)

    def __len__(self):
        return self.n_units

    @property
    def sites(self):
        """Recorded sites in column order."""
        return list(self.site_sizes)

    @property
    def affine(self):
        """The voxel-to-world affine: identity (one voxel = one unit, 1 mm)."""
        return np.eye(4)

    def __eq__(self, other):
        return (
            isinstance(other, UnitSpace)
            and self.site_sizes == other.site_sizes
            and self.table.equals(other.table)
        )

    def __repr__(self):
        return (
            f"UnitSpace({self.n_units} units in {len(self.site_sizes)} sites, "
            f"volume {self.shape[0]}x{self.shape[1]}x{self.shape[2]})"
        )

    # --------------------------------------------------------------- selection
    def select(self, sites=None, layers=None, components=None):
        """Columns of the units at the given sites, layers and/or components.

        Parameters
        ----------
        sites, layers, components : str, int or list, optional
            Filters combined with AND; ``None`` keeps everything.

        Returns
        -------
        columns : ndarray of int
        """
        keep = np.ones(self.n_units, dtype=bool)
        for name, value, col, known in (
            ("sites", sites, "site", self.sites),
            ("layers", layers, "layer", sorted(self.table["layer"].unique().tolist())),
            ("components", components, "component",
             sorted(self.table["component"].unique().tolist())),
        ):
            if value is None:
                continue
            values = [value] if isinstance(value, (str, int, np.integer)) else list(value)
            missing = [v for v in values if v not in known]
            if missing:
                raise SiteError(
                    f"{name}={missing[0]!r} is not in this recording; available {name}: {known}."
                    + (did_you_mean(missing[0], known) if isinstance(missing[0], str) else "")
                )
            keep &= self.table[col].isin(values).to_numpy()
        return np.flatnonzero(keep)

    def subset(self, columns):
        """A new UnitSpace holding only ``columns`` (in column order)."""
        columns = np.asarray(columns, dtype=np.int64)
        sub = self.table.iloc[np.sort(columns)]
        sizes = {s: self.site_sizes[s] for s in self.site_sizes if s in set(sub["site"])}
        return UnitSpace(sizes, {s: g["index"].to_numpy()
                                 for s, g in sub.groupby("site", sort=False)})

    # ------------------------------------------------------------------ volume
    def _check_values(self, values):
        values = np.asarray(values)
        if values.shape[-1] != self.n_units or values.ndim not in (1, 2):
            raise ValueError(
                f"values must have shape (n_units,) or (n_frames, n_units) with n_units="
                f"{self.n_units}, but got shape {values.shape}."
            )
        return values

    def to_volume(self, values, fill=0.0):
        """Lay unit values out as a volume.

        Parameters
        ----------
        values : array of shape (n_units,) or (n_frames, n_units)
        fill : float
            Value of voxels that hold no unit.

        Returns
        -------
        volume : ndarray of shape (nx, ny, nz) or (nx, ny, nz, n_frames)
        """
        values = self._check_values(values)
        i, j, k = (self.table[c].to_numpy() for c in ("i", "j", "k"))
        dtype = np.result_type(values.dtype, np.asarray(fill).dtype)
        if values.ndim == 1:
            vol = np.full(self.shape, fill, dtype=dtype)
            vol[i, j, k] = values
        else:
            vol = np.full(self.shape + (values.shape[0],), fill, dtype=dtype)
            vol[i, j, k, :] = values.T
        return vol

    def from_volume(self, volume):
        """Inverse of :meth:`to_volume`: read unit values back from a volume."""
        volume = np.asarray(volume)
        if volume.shape[:3] != self.shape:
            raise ValueError(
                f"volume must have spatial shape {self.shape}, but got {volume.shape[:3]}."
            )
        i, j, k = (self.table[c].to_numpy() for c in ("i", "j", "k"))
        out = volume[i, j, k]
        return out.T if volume.ndim == 4 else out

    def mask(self):
        """Boolean volume, True where a unit lives."""
        m = np.zeros(self.shape, dtype=bool)
        m[self.table["i"].to_numpy(), self.table["j"].to_numpy(), self.table["k"].to_numpy()] = True
        return m

    def nifti_shape(self, n_frames=None):
        """Shape of the image of a map (``n_frames=None``) or of ``n_frames`` frames.

        Returns
        -------
        tuple of int
            ``(nx, ny, nz)`` or ``(nx, ny, nz, n_frames)``.
        """
        return self.shape if n_frames is None else self.shape + (int(n_frames),)

    def nifti_format(self, n_frames=None):
        """``"NIfTI-1"``, or ``"NIfTI-2"`` when a dimension exceeds NIfTI-1's 32,767.

        :meth:`to_nifti` writes the format this returns; exports call it while
        planning, before the first file is written. A run of more than 32,767
        frames (tokens) is the usual reason for NIfTI-2, which nibabel, nilearn
        and most viewers read.
        """
        return "NIfTI-2" if max(self.nifti_shape(n_frames)) > NIFTI1_MAX_DIM else "NIfTI-1"

    def to_nifti(self, values, *, fill=0.0, intent=None, intent_params=(), description=None):
        """Return a ``nibabel.Nifti1Image`` of unit values (``Nifti2Image`` when needed).

        Parameters
        ----------
        values : array of shape (n_units,) or (n_frames, n_units)
            A 2-D array becomes a 4-D image with frames on the 4th axis
            (``pixdim[4] = 1``, one token).
        intent : str, optional
            NIfTI intent code name, e.g. ``"z score"`` or ``"t test"``.
        intent_params : tuple
            Intent parameters, e.g. ``(dof,)`` for a t map.
        description : str, optional
            Written to the header's ``descrip`` field (80 characters at most).

        Notes
        -----
        NIfTI-1 holds at most 32,767 voxels or frames per dimension; an image
        with a larger dimension (a run of more than 32,767 frames) is a
        ``nibabel.Nifti2Image`` (see :meth:`nifti_format`). Values keep their
        precision: float32 (and float16) data are stored as float32, float64
        as float64, never scaled to integers.
        """
        import nibabel as nib

        values = self._check_values(values)
        dtype = np.float32 if values.dtype.kind == "f" and values.dtype.itemsize <= 4 else None
        vol = self.to_volume(values, fill=fill)
        if dtype is not None:
            vol = vol.astype(dtype, copy=False)
        n_frames = values.shape[0] if values.ndim == 2 else None
        cls = nib.Nifti2Image if self.nifti_format(n_frames) == "NIfTI-2" else nib.Nifti1Image
        img = cls(vol, self.affine)
        img.header.set_xyzt_units(xyz="mm", t="sec")
        if vol.ndim == 4:
            zooms = img.header.get_zooms()
            img.header.set_zooms(zooms[:3] + (1.0,))
        if intent is not None:
            img.header.set_intent(intent, tuple(intent_params))
        if description:
            img.header["descrip"] = description[:79].encode("ascii", "replace")
        return img

    def mask_img(self):
        """The unit mask as a ``nibabel.Nifti1Image`` of uint8."""
        import nibabel as nib

        return nib.Nifti1Image(self.mask().astype(np.uint8), self.affine)

    # --------------------------------------------------------------------- I/O
    def to_frame(self):
        """The unit table as a DataFrame (a copy)."""
        return self.table.copy()

    def to_tsv(self, path, *, overwrite=False):
        """Write ``units.tsv`` (with site sizes in a ``site_size`` column), atomically.

        Raises ``FileExistsError`` for an existing file unless ``overwrite``.
        """
        from .._utils import atomic_write_text

        df = self.table.copy()
        df["site_size"] = df["site"].map(self.site_sizes)
        return atomic_write_text(path, df.to_csv(sep="\t", index=False, na_rep="n/a"),
                                 overwrite=overwrite)

    @classmethod
    def from_tsv(cls, path):
        """Read a ``units.tsv`` written by :meth:`to_tsv`."""
        df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"],
                         dtype={"site": str, "component": str})
        missing = {"site", "index", "site_size"} - set(df.columns)
        if missing:
            raise ValueError(f"{path} is not a units table: missing columns {sorted(missing)}.")
        sizes = {s: int(g["site_size"].iloc[0]) for s, g in df.groupby("site", sort=False)}
        indices = {s: g["index"].to_numpy() for s, g in df.groupby("site", sort=False)}
        space = cls(sizes, indices)
        if not np.array_equal(space.table["site"].to_numpy(), df["site"].to_numpy()) or \
                not np.array_equal(space.table["index"].to_numpy(), df["index"].to_numpy()):
            raise ValueError(f"{path}: unit order does not follow the canonical layout.")
        return space

    @classmethod
    def from_sites(cls, sites, size):
        """All units of ``sites``, each of the same ``size``."""
        return cls({s: size for s in sites})


__all__ = ["UnitSpace", "fold_size", "format_site"]
