"""UnitMap: one value per unit, that knows its units (geometry delegated to UnitSpace)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_option

__all__ = ["UnitMap", "OUTPUT_TYPES", "INFERENCES", "contrast_to_maps"]

OUTPUT_TYPES = ("z_score", "stat", "p_value", "effect_size", "effect_variance")
#: what a UnitMap may hold: a contrast's outputs, or a binary mask (a network's units)
MAP_TYPES = OUTPUT_TYPES + ("mask",)

#: How a map's statistics were made, recorded on every map (``UnitMap.inference``).
INFERENCES = {
    "prompt": "prompt-level random effects: one summary per prompt, then a second-level test "
              "across prompts (generalises over prompts)",
    "permutation": "permutation max-T exchanging whole prompts (or blocks) within runs; "
                   "family-wise error (generalises over prompts)",
    "token": "token-level first-level GLM: a fixed effect of the presented prompts (does not "
             "generalise over prompts)",
    "second_level": "second-level GLM across the given samples (runs, seeds, models...)",
}

_DESCRIPTION = {
    "z_score": "z_score", "stat": "stat", "p_value": "p_value",
    "effect_size": "effect_size", "effect_variance": "effect_variance", "mask": "mask",
}


class UnitMap:
    """Values on units: a z, t, F, p, effect or variance map.

    Parameters
    ----------
    values : array of shape (n_units,) or (q, n_units)
        One value per unit (``q`` rows for an F contrast's effect sizes).
    units : llmfmri.UnitSpace, optional
        Where each unit lives; needed for :meth:`to_nifti` and the site/layer
        columns of :meth:`to_frame`.
    stat_type : {"t", "F"}, optional
    output_type : str, default="z_score"
        One of ``"z_score", "stat", "p_value", "effect_size", "effect_variance"``, or
        ``"mask"`` (1 for units in a set, 0 elsewhere; NIfTI intent ``label``).
    contrast : str, optional
        The contrast, e.g. ``"medical_imaging - control"``.
    dof : float, optional
        Degrees of freedom of a t or F statistic.
    dim : int, optional
        Numerator degrees of freedom of an F statistic.
    correction : str, optional
        Multiple-comparison correction applied to a p map (``"fdr"``...).
    inference : str, optional
        Which inference made the map: a key of :data:`INFERENCES`
        (``"prompt"``, ``"permutation"``, ``"token"``, ``"second_level"``).

    Examples
    --------
    >>> from llmfmri.units import UnitSpace
    >>> from llmfmri.glm import UnitMap
    >>> space = UnitSpace({"layers.0.resid_post": 4})
    >>> m = UnitMap([0.5, 2.0, -1.0, 3.1], space, stat_type="t", output_type="z_score")
    >>> m.to_frame()[["site", "index", "value"]].shape
    (4, 3)
    """

    def __init__(self, values, units=None, *, stat_type=None, output_type="z_score",
                 contrast=None, dof=None, dim=1, correction=None, inference=None):
        check_option("output_type", output_type, MAP_TYPES)
        if inference is not None:
            check_option("inference", inference, tuple(INFERENCES))
        values = np.asarray(values, dtype=np.float64)
        if values.ndim not in (1, 2):
            raise ValueError(
                f"values must have shape (n_units,) or (q, n_units), but got {values.shape}."
            )
        if units is not None:
            n = getattr(units, "n_units", None)
            if n is None:
                raise TypeError(f"units must be a UnitSpace, but got {type(units).__name__}.")
            if values.shape[-1] != n:
                raise ValueError(
                    f"values have {values.shape[-1]} units but units (a UnitSpace) has {n}; "
                    f"got values of shape {values.shape}."
                )
        self.values = values
        self.units = units
        self.stat_type = stat_type
        self.output_type = output_type
        self.contrast = contrast
        self.dof = None if dof is None else float(dof)
        self.dim = int(dim)
        self.correction = correction
        self.inference = inference

    # ------------------------------------------------------------------ basics
    @property
    def n_units(self):
        """Number of units."""
        return self.values.shape[-1]

    def __len__(self):
        return self.n_units

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def __repr__(self):
        bits = [f"{self.output_type}", f"n_units={self.n_units}"]
        if self.contrast:
            bits.insert(0, repr(self.contrast))
        if self.stat_type:
            bits.append(f"stat_type={self.stat_type!r}")
        if self.dof is not None:
            bits.append(f"dof={self.dof:g}")
        if self.correction:
            bits.append(f"correction={self.correction!r}")
        if self.inference:
            bits.append(f"inference={self.inference!r}")
        return "UnitMap(" + ", ".join(bits) + ")"

    def _replace(self, values, **changes):
        kw = dict(units=self.units, stat_type=self.stat_type, output_type=self.output_type,
                  contrast=self.contrast, dof=self.dof, dim=self.dim,
                  correction=self.correction, inference=self.inference)
        kw.update(changes)
        return UnitMap(values, **kw)

    # --------------------------------------------------------------- exports
    def _intent(self):
        if self.output_type == "z_score":
            return "z score", ()
        if self.output_type == "stat" and self.stat_type == "t" and self.dof is not None:
            return "t test", (self.dof,)
        if self.output_type == "stat" and self.stat_type == "F" and self.dof is not None:
            return "f test", (self.dim, self.dof)
        if self.output_type == "p_value":
            return "p value", ()
        if self.output_type == "mask":
            return "label", ()
        return "estimate", ()

    def description(self):
        """Header description, e.g. ``"z_score of contrast a - b"`` (nilearn's style)."""
        text = _DESCRIPTION[self.output_type]
        if self.contrast:
            text += f" of contrast {self.contrast}"
        return text

    def to_nifti(self, path=None, *, overwrite=False):
        """Lay the map out as a NIfTI image (via the UnitSpace), optionally saved.

        Parameters
        ----------
        path : str or Path, optional
            ``.nii`` or ``.nii.gz`` file to write (atomically).
        overwrite : bool, default=False
            Replace an existing file.

        Returns
        -------
        nibabel.Nifti1Image
            With the intent code of the map (``z score``, ``t test`` with its
            dof, ``f test``, ``p value`` or ``estimate``).
        """
        if self.units is None:
            raise ValueError(
                "This UnitMap has no units (it was computed from a plain array), so it has no "
                "volume layout; pass units=UnitSpace(...) when fitting, or build "
                "UnitMap(values, units=...)."
            )
        intent, params = self._intent()
        img = self.units.to_nifti(self.values, intent=intent, intent_params=params,
                                  description=self.description())
        if path is not None:
            from ..io import write_nifti

            write_nifti(img, path, overwrite=overwrite)
        return img

    def to_frame(self, name="value"):
        """A tidy DataFrame: one row per unit with its site, layer, component and index.

        Returns
        -------
        pandas.DataFrame
            Columns ``column, site, layer, component, index`` (when units are
            known) and ``value`` (``value_0 ... value_{q-1}`` for 2-D maps).
        """
        if self.units is not None:
            df = self.units.table[["column", "site", "layer", "component", "index"]].copy()
        else:
            df = pd.DataFrame({"column": np.arange(self.n_units)})
        if self.values.ndim == 1:
            df[name] = self.values
        else:
            for k, row in enumerate(self.values):
                df[f"{name}_{k}"] = row
        return df.reset_index(drop=True)


def contrast_to_maps(contrast, units, output_type, *, inference=None):
    """Turn a :class:`~llmfmri.glm.Contrast` into a UnitMap (or a dict of them for ``"all"``).

    Parameters
    ----------
    contrast : Contrast
    units : UnitSpace or None
    output_type : {"z_score", "stat", "p_value", "effect_size", "effect_variance", "all"}
    inference : str, optional
        Recorded on each map (see :data:`INFERENCES`).

    Returns
    -------
    UnitMap, or dict of output_type -> UnitMap
    """
    check_option("output_type", output_type, OUTPUT_TYPES + ("all",))
    kinds = OUTPUT_TYPES if output_type == "all" else (output_type,)
    maps = {}
    for kind in kinds:
        values = {
            "z_score": contrast.z_score, "stat": contrast.stat, "p_value": contrast.p_value,
            "effect_size": contrast.effect_size, "effect_variance": contrast.effect_variance,
        }[kind]()
        if values.ndim == 2 and values.shape[0] == 1:
            values = values[0]
        maps[kind] = UnitMap(values, units, stat_type=contrast.stat_type, output_type=kind,
                             contrast=contrast.name, dof=contrast.dof, dim=contrast.dim,
                             inference=inference)
    return maps if output_type == "all" else maps[output_type]
