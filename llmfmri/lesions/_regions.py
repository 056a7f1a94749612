"""Regions of parameter space: boolean masks over the block matrices (no torch).

A :class:`WeightRegion` holds one boolean mask per weight matrix
(``layers.{i}.{kind}``, ``(out_features, in_features)``): the core region of
Zhang et al. (2024, the top 1 % of each matrix by importance), its controls
(bottom, random), a text set's specific region, one hidden dimension's
weights, single parameters. Regions combine with ``|``, ``&`` and ``-``,
report their per-matrix counts, and are saved as a safetensors file of masks
plus a JSON sidecar (:meth:`WeightRegion.save`, :func:`load_region`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import check_positive_int, check_random_state, logger
from ..exceptions import DataError
from ._weights import MATRIX_KINDS, parse_matrix_name

__all__ = ["WeightRegion", "load_region", "random_regions", "REGION_RULES"]

#: How a region was made (``WeightRegion.rule``).
REGION_RULES = {
    "top": "the top fraction of each matrix by importance (the core region)",
    "bottom": "the bottom fraction of each matrix by importance (a control)",
    "random": "a random fraction of each matrix, or random entries matched per matrix",
    "specific": "a text set's top fraction minus every other set's top fraction",
    "dimension": "the weights that read or write one hidden dimension of one layer",
    "entries": "explicit entries (single parameters)",
    "union": "the union of regions",
    "intersection": "the intersection of regions",
    "difference": "a region minus another",
}

_FORMAT = "llmfmri-weight-region"
#: 2: masks stored as packed bits (1: one bool per weight; still read)
_VERSION = 2


def _sort_key(name):
    layer, kind = parse_matrix_name(name)
    return layer, MATRIX_KINDS.index(kind)


def _stem(path):
    path = Path(path)
    for suffix in (".safetensors", ".json"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


class WeightRegion:
    """Boolean masks over weight matrices: a region of parameter space.

    Parameters
    ----------
    masks : mapping of str to array of bool, shape (out_features, in_features)
        One mask per matrix ``layers.{i}.{kind}`` (matrices without a mask are
        outside the region).
    label : str, default="region"
    rule : str, optional
        How it was made (:data:`REGION_RULES`).
    info : dict, optional
        Provenance (model, text sets, fraction...), saved in the JSON sidecar.

    Attributes
    ----------
    masks : dict of str to ndarray of bool
    n_params : int
        Entries selected.
    n_total : int
        Entries of the matrices it covers.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.lesions import WeightRegion
    >>> a = WeightRegion({"layers.0.o": np.eye(3, dtype=bool)}, label="a")
    >>> b = WeightRegion({"layers.0.o": np.ones((3, 3), dtype=bool)}, label="b")
    >>> (a & b).n_params, (b - a).n_params, (a | b).n_params
    (3, 6, 9)
    """

    def __init__(self, masks, label="region", rule=None, info=None):
        out = {}
        for name, mask in dict(masks).items():
            parse_matrix_name(name)
            arr = np.asarray(mask)
            if arr.dtype != bool:
                raise TypeError(f"The mask of {name!r} must be boolean, but has dtype "
                                f"{arr.dtype}.")
            if arr.ndim != 2:
                raise DataError(f"The mask of {name!r} must be 2-D (out_features, "
                                f"in_features), but has shape {arr.shape}.")
            out[str(name)] = arr
        if not out:
            raise DataError("A WeightRegion needs at least one matrix mask.")
        self.masks = {n: out[n] for n in sorted(out, key=_sort_key)}
        self.label = str(label)
        self.rule = rule
        self.info = dict(info or {})

    # ------------------------------------------------------------------ sizes
    @property
    def names(self):
        return list(self.masks)

    @property
    def n_params(self):
        return int(sum(int(m.sum()) for m in self.masks.values()))

    @property
    def n_total(self):
        return int(sum(m.size for m in self.masks.values()))

    @property
    def fraction(self):
        return self.n_params / self.n_total if self.n_total else 0.0

    def nonempty(self):
        """Names of the matrices with at least one selected entry."""
        return [n for n, m in self.masks.items() if m.any()]

    def __repr__(self):
        return (f"WeightRegion({self.label!r}, n_params={self.n_params}, "
                f"fraction={self.fraction:.4g}, matrices={len(self.masks)})")

    def counts(self):
        """Selected entries per matrix.

        Returns
        -------
        pandas.DataFrame
            ``matrix, layer, kind, n_out, n_in, n_total, n_params, fraction``.
        """
        rows = []
        for name, m in self.masks.items():
            layer, kind = parse_matrix_name(name)
            k = int(m.sum())
            rows.append({"matrix": name, "layer": layer, "kind": kind, "n_out": m.shape[0],
                         "n_in": m.shape[1], "n_total": int(m.size), "n_params": k,
                         "fraction": k / m.size})
        return pd.DataFrame(rows, columns=["matrix", "layer", "kind", "n_out", "n_in",
                                           "n_total", "n_params", "fraction"])

    def profile(self, by="layer"):
        """Selected entries per layer or per kind (``by="layer"`` / ``"kind"``)."""
        c = self.counts()
        if by not in ("layer", "kind"):
            raise ValueError(f"by must be 'layer' or 'kind', but got {by!r}.")
        g = c.groupby(by, sort=False)[["n_params", "n_total"]].sum().reset_index()
        g["fraction"] = g["n_params"] / g["n_total"]
        return g

    def entries(self, limit=100_000):
        """The selected entries as a table ``matrix, row, col`` (small regions only)."""
        if self.n_params > limit:
            raise DataError(f"The region has {self.n_params} entries, more than limit={limit}; "
                            "use counts() or raise the limit.")
        rows = []
        for name, m in self.masks.items():
            r, c = np.nonzero(m)
            rows.append(pd.DataFrame({"matrix": name, "row": r, "col": c}))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            columns=["matrix", "row", "col"])

    # -------------------------------------------------------------- algebra
    def _check_same(self, other, op):
        if not isinstance(other, WeightRegion):
            raise TypeError(f"{op} needs two WeightRegions, but got {type(other).__name__}.")
        for name in set(self.masks) & set(other.masks):
            if self.masks[name].shape != other.masks[name].shape:
                raise DataError(
                    f"Regions {self.label!r} and {other.label!r} disagree on the shape of "
                    f"{name!r}: {self.masks[name].shape} and {other.masks[name].shape}; they "
                    "come from different models.")

    def _combine(self, other, fn, rule, symbol):
        self._check_same(other, symbol)
        names = list(dict.fromkeys(list(self.masks) + list(other.masks)))
        out = {}
        for n in names:
            shape = (self.masks.get(n) if n in self.masks else other.masks[n]).shape
            a = self.masks.get(n, np.zeros(shape, dtype=bool))
            b = other.masks.get(n, np.zeros(shape, dtype=bool))
            out[n] = fn(a, b)
        return WeightRegion(out, label=f"({self.label} {symbol} {other.label})", rule=rule,
                            info={"operands": [self.label, other.label]})

    def __or__(self, other):
        return self._combine(other, np.logical_or, "union", "|")

    def __and__(self, other):
        return self._combine(other, np.logical_and, "intersection", "&")

    def __sub__(self, other):
        return self._combine(other, lambda a, b: a & ~b, "difference", "-")

    def union(self, *others, label=None):
        out = self
        for o in others:
            out = out | o
        if label:
            out.label = label
        return out

    def intersection(self, *others, label=None):
        out = self
        for o in others:
            out = out & o
        if label:
            out.label = label
        return out

    def overlap(self, other):
        """Entries in both regions, and Jaccard index: ``{"n_both", "jaccard"}``."""
        both = (self & other).n_params
        either = (self | other).n_params
        return {"n_both": both, "jaccard": both / either if either else float("nan")}

    def relabel(self, label):
        """The same masks under another label."""
        return WeightRegion(self.masks, label=label, rule=self.rule, info=self.info)

    # -------------------------------------------------------------- checks
    def check_model(self, matrices_or_model):
        """Raise DataError unless every mask fits a matrix of the model (name and shape)."""
        if isinstance(matrices_or_model, dict):
            mats = matrices_or_model
        else:
            from ._weights import model_matrices

            mats = model_matrices(matrices_or_model)
        for name, mask in self.masks.items():
            if name not in mats:
                from .._utils import did_you_mean

                raise DataError(
                    f"The region {self.label!r} has a mask for {name!r}, which the model does "
                    f"not have (it has {len(mats)} matrices, e.g. {list(mats)[:3]}); was the "
                    "region made on another model?" + did_you_mean(name, list(mats)))
            shape = tuple(mats[name].shape)
            if tuple(mask.shape) != shape:
                raise DataError(
                    f"The region {self.label!r} has a mask of shape {tuple(mask.shape)} for "
                    f"{name!r}, but the model's matrix has shape {shape}: the region comes "
                    "from another model.")

    # ------------------------------------------------------------ builders
    @classmethod
    def from_entries(cls, model_or_shapes, entries, *, label="entries"):
        """A region of explicit entries (single parameters).

        Parameters
        ----------
        model_or_shapes : model or mapping of str to (int, int)
            The model (or :func:`matrix_shapes` of it).
        entries : mapping of str to list of (row, col)
            ``{"layers.1.o": [(2100, 5)]}``.
        label : str
        """
        shapes = _shapes(model_or_shapes)
        masks = {}
        for name, pairs in dict(entries).items():
            if name not in shapes:
                raise DataError(f"The model has no matrix {name!r}; matrices are e.g. "
                                f"{list(shapes)[:4]}.")
            mask = np.zeros(shapes[name], dtype=bool)
            for pair in pairs:
                try:
                    r, c = (int(x) for x in pair)
                except (TypeError, ValueError):
                    raise TypeError(f"entries of {name!r} must be (row, col) pairs, but got "
                                    f"{pair!r}.") from None
                if not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]):
                    raise DataError(f"Entry ({r}, {c}) is outside {name!r} of shape "
                                    f"{mask.shape}.")
                mask[r, c] = True
            masks[name] = mask
        if not any(m.any() for m in masks.values()):
            raise DataError("entries selects no weight: give at least one (row, col).")
        return cls(masks, label=label, rule="entries")

    @classmethod
    def random(cls, model_or_shapes, fraction=0.01, *, kinds=None, layers=None,
               random_state=None, label=None):
        """A uniform random ``fraction`` of each matrix (``int(fraction * size)`` entries)."""
        from .._utils import check_fraction

        fraction = check_fraction("fraction", fraction)
        rng = check_random_state(random_state)
        shapes = _shapes(model_or_shapes, kinds=kinds, layers=layers)
        masks = {}
        for name, shape in shapes.items():
            size = shape[0] * shape[1]
            mask = np.zeros(size, dtype=bool)
            mask[rng.choice(size, size=int(fraction * size), replace=False)] = True
            masks[name] = mask.reshape(shape)
        return cls(masks, label=label or f"random{fraction:g}", rule="random",
                   info={"fraction": fraction})

    # ----------------------------------------------------------------- files
    def add_to(self, outputs, name):
        """Plan ``<name>.safetensors`` and ``<name>.json`` in an :class:`~llmfmri.io.OutputSet`."""
        from safetensors.numpy import save as st_save

        meta = {"format": _FORMAT, "version": _VERSION, "encoding": "packbits",
                "label": self.label, "rule": self.rule,
                "n_params": self.n_params, "n_total": self.n_total,
                "fraction": self.fraction, "info": self.info,
                "masks": Path(name).name + ".safetensors",
                "matrices": {n: list(m.shape) for n, m in self.masks.items()},
                "counts": {n: int(m.sum()) for n, m in self.masks.items()}}
        # one bit per weight (numpy.packbits of the row-major mask): a region of the
        # default model is 13 MB instead of 106 MB as a bool array
        outputs.add(f"{name}.safetensors",
                    lambda: st_save({n: np.packbits(np.ascontiguousarray(m).ravel())
                                     for n, m in self.masks.items()},
                                    metadata={"format": _FORMAT, "encoding": "packbits",
                                              "label": self.label}))
        outputs.add_json(f"{name}.json", meta)

    def save(self, path, *, overwrite=False):
        """Write ``<stem>.safetensors`` (a mask per matrix, a bit per weight) and ``<stem>.json``.

        The masks are ``numpy.packbits`` of each matrix's row-major boolean mask
        (uint8); ``np.unpackbits(a, count=m * n).reshape(m, n).astype(bool)``
        gives a mask back, with its shape from the JSON's ``matrices``.

        Parameters
        ----------
        path : str or Path
            The stem, or a path ending in ``.safetensors`` / ``.json``.
        overwrite : bool, default=False
            Replace existing files; otherwise ``FileExistsError`` (before
            anything is written).

        Returns
        -------
        list of Path
        """
        from ..io import OutputSet

        stem = _stem(path)
        out = OutputSet(stem.parent, overwrite=overwrite)
        self.add_to(out, stem.name)
        return out.write()


def load_region(path):
    """Read a region written by :meth:`WeightRegion.save` (the stem, ``.json`` or ``.safetensors``).

    Raises
    ------
    FileNotFoundError
        A missing file.
    DataError
        Files that are not a region, or masks that disagree with the JSON counts.
    """
    from safetensors.numpy import load_file

    stem = _stem(path)
    meta_path, mask_path = Path(f"{stem}.json"), Path(f"{stem}.safetensors")
    for p in (meta_path, mask_path):
        if not p.is_file():
            raise FileNotFoundError(f"Region file {p} does not exist (a region is saved as "
                                    "<stem>.json and <stem>.safetensors).")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != _FORMAT:
        raise DataError(f"{meta_path} is not a weight region (format {meta.get('format')!r}).")
    stored = load_file(str(mask_path))
    if meta.get("encoding") == "packbits":
        shapes = meta.get("matrices", {})
        masks = {}
        for name, bits in stored.items():
            if name not in shapes:
                raise DataError(f"{mask_path} holds {name!r}, which {meta_path} does not list; "
                                "the files do not belong together.")
            shape = tuple(int(x) for x in shapes[name])
            size = int(np.prod(shape))
            if bits.dtype != np.uint8 or bits.size != (size + 7) // 8:
                raise DataError(f"{mask_path}: the mask of {name!r} has {bits.size} bytes, but a "
                                f"{shape} matrix needs {(size + 7) // 8}; the files do not "
                                "belong together.")
            masks[name] = np.unpackbits(bits, count=size).reshape(shape).astype(bool)
    else:  # version 1: one bool per weight
        masks = stored
    for name, k in meta.get("counts", {}).items():
        if name not in masks or int(masks[name].sum()) != int(k):
            raise DataError(f"{mask_path} disagrees with {meta_path} on {name!r}; the files "
                            "do not belong together.")
    return WeightRegion(masks, label=meta.get("label", stem.name), rule=meta.get("rule"),
                        info=meta.get("info"))


def _shapes(model_or_shapes, kinds=None, layers=None):
    if isinstance(model_or_shapes, dict):
        return {n: tuple(s) for n, s in model_or_shapes.items()}
    if isinstance(model_or_shapes, WeightRegion):
        return {n: m.shape for n, m in model_or_shapes.masks.items()}
    from ._weights import matrix_shapes

    return matrix_shapes(model_or_shapes, kinds=kinds, layers=layers)


def random_regions(region, n=5, *, exclude=True, random_state=None, label=None):
    """Random regions with exactly ``region``'s number of entries in every matrix.

    The matched controls of a weight lesion: each draw takes, in every
    matrix, as many entries as the region has there, uniformly without
    replacement (outside the region with ``exclude``).

    Parameters
    ----------
    region : WeightRegion
    n : int, default=5
    exclude : bool, default=True
        Draw outside the region.
    random_state : int or numpy Generator, optional
    label : str, optional
        Prefix of the labels (default ``"random"``): ``<label>-<k>(<region>)``.

    Returns
    -------
    list of WeightRegion
        ``rule="random"``, each with ``region``'s per-matrix counts.

    Raises
    ------
    DataError
        When a matrix has fewer entries outside the region than inside it.
    """
    if not isinstance(region, WeightRegion):
        raise TypeError(f"region must be a WeightRegion, but got {type(region).__name__}.")
    n = check_positive_int("n", n)
    rng = check_random_state(random_state)
    plan = []
    for name, mask in region.masks.items():
        want = int(mask.sum())
        flat = mask.reshape(-1)
        pool = np.flatnonzero(~flat) if exclude else np.arange(flat.size)
        if want and pool.size < want:
            raise DataError(f"Matrix {name!r} has {want} region entries but only {pool.size} "
                            "others to draw a control from; use exclude=False or a smaller "
                            "region.")
        plan.append((name, mask.shape, want, pool))
    out = []
    for k in range(n):
        masks = {}
        for name, shape, want, pool in plan:
            m = np.zeros(shape[0] * shape[1], dtype=bool)
            if want:
                m[rng.choice(pool, size=want, replace=False)] = True
            masks[name] = m.reshape(shape)
        out.append(WeightRegion(masks, label=f"{label or 'random'}-{k}({region.label})",
                                rule="random", info={"matched_to": region.label,
                                                     "exclude": bool(exclude)}))
    logger.info("random_regions: %d draws of %d weights matched per matrix", n, region.n_params)
    return out
