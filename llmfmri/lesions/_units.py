"""Which units a lesion touches: a Network, a table, or explicit (site, index) pairs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._utils import did_you_mean
from ..exceptions import DataError, SiteError
from ..networks import Network
from ..units import parse_site

__all__ = ["LesionUnits", "as_lesion_units", "model_identity"]


class LesionUnits:
    """The units of one lesion: sorted, unique indices per site, in site order.

    Parameters
    ----------
    indices : mapping of str to array of int
        Site -> indices into the site's output (its hidden dimension).
    site_sizes : mapping of str to int, optional
        Width of each site in the model the units were chosen on (known when
        they come from a Network or a recording's table); checked against the
        lesioned model.
    label : str
        Name used in logs and tables.
    """

    def __init__(self, indices, site_sizes=None, label="lesion"):
        self.indices = {s: np.asarray(v, dtype=np.int64) for s, v in indices.items()}
        self.site_sizes = dict(site_sizes or {})
        self.label = str(label)

    @property
    def n_units(self):
        """Number of units lesioned."""
        return int(sum(v.size for v in self.indices.values()))

    @property
    def sites(self):
        return list(self.indices)

    def pairs(self):
        """The units as a list of ``(site, index)`` pairs."""
        return [(s, int(i)) for s, idx in self.indices.items() for i in idx]

    def profile(self):
        """Units per site: a DataFrame with ``site, layer, component, n_units``."""
        rows = []
        for site, idx in self.indices.items():
            layer, component = parse_site(site)
            rows.append({"site": site, "layer": layer, "component": component,
                         "n_units": int(idx.size)})
        return pd.DataFrame(rows, columns=["site", "layer", "component", "n_units"])

    def __repr__(self):
        return (f"LesionUnits({self.label!r}, n_units={self.n_units}, "
                f"sites={len(self.indices)})")

    # ------------------------------------------------------------------ checks
    def check_model(self, adapter, model_name="the model"):
        """Raise unless every unit exists in the model of ``adapter`` (same sites and widths)."""
        for site, idx in self.indices.items():
            try:
                adapter.check_site(site)
            except SiteError as exc:
                raise SiteError(
                    f"The lesion {self.label!r} names units of site {site!r}, which "
                    f"{model_name} does not have: {exc} Were the units chosen on another "
                    "model? Lesion units chosen on this model (a recording of it)."
                ) from None
            width = adapter.site_size(site)
            known = self.site_sizes.get(site)
            if known is not None and int(known) != width:
                raise DataError(
                    f"The lesion {self.label!r} was chosen on units where site {site!r} has "
                    f"{known} units, but in {model_name} it has {width}: the units come from "
                    "another model. Lesion units chosen on this model (a recording of it)."
                )
            if idx.size and idx.max() >= width:
                raise DataError(
                    f"The lesion {self.label!r} names index {int(idx.max())} of site {site!r}, "
                    f"but that site of {model_name} has {width} units (indices 0..{width - 1}): "
                    "the units come from another model, or the indices are wrong."
                )


def model_identity(model):
    """``(model_id, weights)`` of a model, as ``record`` writes them into ``recording.json``."""
    info = dict(getattr(model, "llmfmri_info", {}) or {})
    config = getattr(model, "config", None)
    model_id = info.get("model_id") or getattr(config, "_name_or_path", None) or "model"
    return model_id, info.get("weights_sha256") or info.get("seed")


def _from_network(net, label):
    if net.units is None:
        raise DataError(
            f"Network {net.label!r} has no UnitSpace, so its units cannot be located in a "
            "model; make it from a map of a recording (task_map, top_k...), which carries one."
        )
    if net.n_units == 0:
        raise DataError(
            f"Network {net.label!r} is empty (0 of {net.n_total} units): there is nothing to "
            "lesion. Lower the threshold or choose units with top_k(map, fraction=...)."
        )
    table = net.units.table.iloc[net.columns]
    indices = {s: np.sort(g["index"].to_numpy(dtype=np.int64))
               for s, g in table.groupby("site", sort=False)}
    sizes = {s: net.units.site_sizes[s] for s in indices}
    return LesionUnits(indices, sizes, label or net.label)


def _from_table(df, label):
    missing = [c for c in ("site", "index") if c not in df.columns]
    if missing:
        raise DataError(
            f"units given as a table need columns 'site' and 'index' (as Network.to_frame() "
            f"and a network's _units.tsv have), but it lacks {missing}; columns are "
            f"{list(df.columns)}." + did_you_mean(missing[0], [str(c) for c in df.columns])
        )
    return _from_pairs(zip(df["site"].astype(str), df["index"]), label)


def _from_pairs(pairs, label):
    by_site = {}
    for k, pair in enumerate(pairs):
        try:
            site, index = pair
        except (TypeError, ValueError):
            raise TypeError(
                f"units must be (site, index) pairs such as ('layers.3.resid_post', 17), but "
                f"item {k} is {pair!r}."
            ) from None
        _check_index(site, index)
        by_site.setdefault(str(site), []).append(int(index))
    return _from_mapping(by_site, label)


def _check_index(site, index):
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)) \
            or index < 0:
        raise TypeError(
            f"Unit indices must be whole numbers >= 0, but site {site!r} has index {index!r}."
        )


def _from_mapping(mapping, label):
    indices = {}
    for site, idx in mapping.items():
        parse_site(str(site))  # SiteError for names outside the grammar
        arr = np.atleast_1d(np.asarray(idx))
        if arr.size == 0:
            continue
        for i in arr.ravel():
            _check_index(site, i.item() if hasattr(i, "item") else i)
        indices[str(site)] = np.unique(arr.astype(np.int64))
    if not indices:
        raise DataError(
            f"The lesion {label!r} has no units: there is nothing to lesion. Give a Network, "
            "(site, index) pairs or {site: indices}."
        )
    order = sorted(indices, key=_site_key)
    return LesionUnits({s: indices[s] for s in order}, None, label)


def _site_key(site):
    layer, component = parse_site(site)
    return (layer, component)


def as_lesion_units(units, label=None):
    """Normalise the units of a lesion.

    Parameters
    ----------
    units : Network, LesionUnits, DataFrame, mapping or sequence of pairs
        A :class:`~llmfmri.networks.Network` (from ``threshold``, ``top_k``,
        ``random_network``...), a table with ``site`` and ``index`` columns
        (``Network.to_frame()``, a network's ``_units.tsv``), a mapping
        ``{site: indices}`` or ``(site, index)`` pairs.
    label : str, optional

    Returns
    -------
    LesionUnits
    """
    if isinstance(units, LesionUnits):
        return units if label is None else LesionUnits(units.indices, units.site_sizes, label)
    if isinstance(units, Network):
        return _from_network(units, label)
    if isinstance(units, pd.DataFrame):
        return _from_table(units, label or "units")
    if isinstance(units, Mapping):
        return _from_mapping(units, label or "units")
    if isinstance(units, (list, tuple)):
        if not units:
            raise DataError(
                "units is empty: there is nothing to lesion. Give a Network, (site, index) "
                "pairs or {site: indices}."
            )
        return _from_pairs(units, label or "units")
    raise TypeError(
        "units must be a Network, a table with 'site' and 'index' columns, {site: indices} or "
        f"a list of (site, index) pairs, but got {type(units).__name__}."
    )
