"""Making networks: threshold a map, take its top units, or draw a matched random set."""

from __future__ import annotations

import numbers

import numpy as np

from .._utils import check_fraction, check_option, check_positive_int, check_random_state
from ..exceptions import DataError
from ..glm import PermutationResult, UnitMap, correct
from ._network import Network, site_strata
from ._taskmap import TAILS, TaskMap, as_z_map, tail_p_values

__all__ = ["threshold", "top_k", "random_network"]

_CORRECTIONS = ("fdr", "bonferroni", "maxt", None)


def _from_permutation(result):
    """A TaskMap of a PermutationResult (z from its t, p_fwer as is)."""
    from ..glm import z_from_t

    dof = result.dof if result.dof else np.inf
    z = UnitMap(z_from_t(result.stat, dof) + 0.0, result.units, stat_type="t",
                output_type="z_score", contrast=result.contrast, dof=dof,
                inference="permutation")
    return TaskMap(z=z, effect=None, inference="permutation", contrast=result.contrast,
                   dof=float(dof), n_samples=0, by=result.by, p_fwer=result.p_map(),
                   two_sided=bool(result.two_sided), n_permutations=result.n_perm)


def threshold(stat_map, *, alpha=0.05, correction="fdr", height=None, tail="positive",
              label=None):
    """Threshold a map into a network (nilearn's ``threshold_stats_img``, for units).

    Parameters
    ----------
    stat_map : TaskMap, PermutationResult, or UnitMap of z (or t with dof)
        The map. A :class:`TaskMap` (from :func:`task_map`) carries its
        inference; use ``inference="prompt"`` or ``"permutation"`` for a
        network that generalises over prompts.
    alpha : float, default=0.05
        Level: units with (corrected) p <= ``alpha`` are kept.
    correction : {"fdr", "bonferroni", "maxt", None}, default="fdr"
        ``"fdr"``: Benjamini-Hochberg q values over all units (Benjamini &
        Hochberg 1995); ``"bonferroni"``: family-wise, ``p * n_units``;
        ``"maxt"``: the family-wise p values of a permutation max-T test
        (a permutation TaskMap or PermutationResult; Nichols & Holmes 2002);
        None: uncorrected p, or a ``height`` on the statistic.
    height : float, optional
        With ``correction=None``: keep units whose statistic (z, or t for a
        t map) is at least ``height`` (``<= -height`` for the negative tail,
        ``|stat| >= height`` for both).
    tail : {"positive", "negative", "two-sided"}, default="positive"
        Which effects form the network; p values are one-sided for
        ``"positive"``/``"negative"`` and two-sided (``2 P(Z > |z|)``) for
        ``"two-sided"``.
    label : str, optional
        Name of the network (default: the contrast).

    Returns
    -------
    Network
        With ``contrast``, ``inference``, ``alpha``, ``correction``,
        ``height``, ``tail`` and the z map as ``stat_map``.

    Raises
    ------
    ValueError
        For an unknown ``tail`` or ``correction``, an ``alpha`` outside
        (0, 1), a ``height`` with a correction, or ``"maxt"`` on a map
        without permutations (and FDR/Bonferroni on one with them).
    DataError
        For a negative tail of a one-sided permutation test.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.glm import UnitMap
    >>> from llmfmri.networks import threshold
    >>> z = UnitMap(np.r_[5.0, 4.5, -6.0, np.zeros(97)], output_type="z_score")
    >>> threshold(z, alpha=0.05, correction="fdr").columns.tolist()
    [0, 1]
    >>> threshold(z, correction="fdr", tail="two-sided").columns.tolist()
    [0, 1, 2]
    >>> threshold(z, correction=None, height=4.8).columns.tolist()
    [0]
    """
    check_option("tail", tail, TAILS)
    check_option("correction", correction, _CORRECTIONS)
    if isinstance(stat_map, PermutationResult):
        stat_map = _from_permutation(stat_map)
    z, zmap, tm = as_z_map(stat_map)
    inference = tm.inference if tm is not None else zmap.inference
    contrast = tm.contrast if tm is not None else zmap.contrast
    stat = np.asarray(stat_map.values if isinstance(stat_map, UnitMap) else z, dtype=float)
    common = dict(label=label, contrast=contrast, inference=inference, tail=tail,
                  stat_map=zmap)
    if height is not None:
        if correction is not None:
            raise ValueError(
                f"height={height!r} is a cut on the statistic, used only with "
                f"correction=None (nilearn's height_control=None), but got "
                f"correction={correction!r}; pass correction=None, or drop height."
            )
        if isinstance(height, bool) or not isinstance(height, numbers.Real) or \
                not np.isfinite(height) or height < 0:
            raise ValueError(f"height must be a finite number >= 0, but got {height!r}.")
        height = float(height)
        if tail == "positive":
            mask = stat >= height
        elif tail == "negative":
            mask = stat <= -height
        else:
            mask = np.abs(stat) >= height
        return Network(mask, zmap.units, rule="height", height=height, **common)
    alpha = check_fraction("alpha", alpha, inclusive=(False, False))
    perm = tm is not None and tm.p_fwer is not None
    if correction == "maxt":
        if not perm:
            raise ValueError(
                "correction='maxt' needs family-wise p values from a permutation max-T test: "
                "pass task_map(..., inference='permutation') or a PermutationResult, or use "
                "correction='fdr'."
            )
        if tail != "positive" and not tm.two_sided:
            raise DataError(
                f"tail={tail!r} needs a two-sided max-T test, but this permutation map is "
                "one-sided (upper tail); rerun task_map(..., inference='permutation', "
                "two_sided=True)."
            )
        p = tm.p_fwer.values
        sig = p <= alpha
        if tail == "positive":
            sig &= z > 0
        elif tail == "negative":
            sig &= z < 0
        return Network(sig, zmap.units, rule="threshold", alpha=alpha, correction="maxt",
                       **common)
    if perm:
        raise ValueError(
            f"This map comes from a permutation max-T test, whose p values are already "
            f"family-wise corrected; use correction='maxt' instead of {correction!r}."
        )
    p = tail_p_values(z, tail)
    if correction is not None:
        p = correct(p, correction)
    return Network(p <= alpha, zmap.units, rule="threshold", alpha=alpha,
                   correction=correction, **common)


def _scores(values, tail):
    if tail == "positive":
        return values
    if tail == "negative":
        return -values
    return np.abs(values)


def _take_top(score, k):
    """Indices of the k largest scores (ties broken by column order)."""
    order = np.lexsort((np.arange(score.size), -score))
    return order[:k]


def top_k(stat_map, *, fraction=None, k=None, per_layer=False, tail="positive", label=None):
    """The units with the largest statistics: a localizer-style network.

    Parameters
    ----------
    stat_map : TaskMap or UnitMap
        A TaskMap (its z scores are ranked) or any one-value-per-unit map
        (its values are ranked: z, t or effect).
    fraction : float in (0, 1], optional
        Share of units to keep (of all units, or of each site when
        ``per_layer``); ``round(fraction * n)``, at least 1. Default 0.01
        when neither ``fraction`` nor ``k`` is given.
    k : int, optional
        Number of units to keep (in all, or in each site when ``per_layer``).
    per_layer : bool, default=False
        Select within each site (layer of a component) separately, so every
        layer contributes the same share, as localizer studies do per layer
        (AlKhamissi et al. 2025); otherwise over all units at once.
    tail : {"positive", "negative", "two-sided"}, default="positive"
        Rank by the value, its negative, or its absolute value.
    label : str, optional

    Returns
    -------
    Network

    Raises
    ------
    ValueError
        When both ``fraction`` and ``k`` are given, or they are out of range.
    DataError
        When ``per_layer`` is asked of a map without units, or ``k`` exceeds
        the units available.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.units import UnitSpace
    >>> from llmfmri.glm import UnitMap
    >>> from llmfmri.networks import top_k
    >>> space = UnitSpace({"layers.0.resid_post": 4, "layers.1.resid_post": 4})
    >>> m = UnitMap([9, 8, 7, 6, 1, 2, 3, 4], space, output_type="stat", stat_type="t")
    >>> top_k(m, k=2).columns.tolist()
    [0, 1]
    >>> top_k(m, k=1, per_layer=True).columns.tolist()
    [0, 7]
    """
    check_option("tail", tail, TAILS)
    if fraction is not None and k is not None:
        raise ValueError(f"Give fraction or k, not both (got fraction={fraction!r}, k={k!r}).")
    if fraction is None and k is None:
        fraction = 0.01
    if fraction is not None:
        fraction = check_fraction("fraction", fraction)
    else:
        k = check_positive_int("k", k)
    if isinstance(stat_map, TaskMap):
        values, source = stat_map.z.values, stat_map.z
        contrast, inference = stat_map.contrast, stat_map.inference
    elif isinstance(stat_map, UnitMap):
        if stat_map.values.ndim != 1:
            raise DataError(f"stat_map must have one value per unit, but has shape "
                            f"{stat_map.values.shape}.")
        values, source = stat_map.values, stat_map
        contrast, inference = stat_map.contrast, stat_map.inference
    else:
        raise TypeError(f"stat_map must be a TaskMap or a UnitMap, but got "
                        f"{type(stat_map).__name__}.")
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all():
        raise DataError("stat_map has NaN or infinite values; top_k cannot rank them.")
    score = _scores(values, tail)
    units = source.units
    if per_layer and units is None:
        raise DataError(
            "per_layer=True needs the map's UnitSpace, but this map has none; pass "
            "units=UnitSpace(...) when mapping, or use per_layer=False."
        )
    strata, sites = site_strata(units if per_layer else None, values.size)
    mask = np.zeros(values.size, dtype=bool)
    for s, site in enumerate(sites):
        idx = np.flatnonzero(strata == s)
        n_take = k if k is not None else max(1, int(round(fraction * idx.size)))
        if n_take > idx.size:
            where = f"site {site!r}" if per_layer else "the map"
            raise DataError(f"k={n_take} exceeds the {idx.size} units of {where}.")
        mask[idx[_take_top(score[idx], n_take)]] = True
    return Network(mask, units, label=label, contrast=contrast, inference=inference,
                   rule="top_k", tail=tail, fraction=fraction, k=k, per_layer=per_layer,
                   stat_map=source)


def random_network(like, *, match="layer", random_state=None, label=None):
    """A random network with as many units as ``like`` in each site (or in all).

    The matched control of network studies and lesions: same size, same
    layer profile, units drawn uniformly without replacement within each
    site.

    Parameters
    ----------
    like : Network
    match : {"layer", None}, default="layer"
        ``"layer"``: the same count in every site (layer of a component);
        None: the same total anywhere.
    random_state : int or numpy Generator, optional
    label : str, optional
        Default ``"random(<label>)"``.

    Returns
    -------
    Network

    Raises
    ------
    DataError
        For ``match="layer"`` on a network without units.

    Examples
    --------
    >>> from llmfmri.units import UnitSpace
    >>> from llmfmri.networks import Network, random_network
    >>> space = UnitSpace({"layers.0.resid_post": 4, "layers.1.resid_post": 4})
    >>> net = Network([1, 1, 0, 0, 1, 0, 0, 0], space, label="a")
    >>> random_network(net, random_state=0).layer_profile()["n_units"].tolist()
    [2, 1]
    """
    if not isinstance(like, Network):
        raise TypeError(f"like must be a Network, but got {type(like).__name__}.")
    check_option("match", match, ("layer", None))
    if match == "layer" and like.units is None:
        raise DataError("match='layer' needs the network's UnitSpace; this network has none "
                        "(use match=None).")
    rng = check_random_state(random_state)
    strata, _ = site_strata(like.units if match == "layer" else None, like.n_total)
    mask = np.zeros(like.n_total, dtype=bool)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        n = int(like.mask[idx].sum())
        if n:
            mask[rng.choice(idx, size=n, replace=False)] = True
    return Network(mask, like.units, label=label or f"random({like.label})", rule="random",
                   inference=None, tail=None)
