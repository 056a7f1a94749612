"""Controls for a lesion: matched random units, least-selective units, the control distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_option, check_positive_int, check_random_state, logger, warn
from ..exceptions import DataError
from ..glm import UnitMap
from ..networks import Network, TaskMap, top_k

__all__ = ["random_controls", "least_selective", "unit_magnitude", "compare_to_controls",
           "ALTERNATIVES"]

#: Which direction of a lesion effect counts as a deficit (``compare_to_controls``).
ALTERNATIVES = ("greater", "less", "two-sided")


def _check_network(net, name="network"):
    if not isinstance(net, Network):
        raise TypeError(f"{name} must be a Network (threshold, top_k...), but got "
                        f"{type(net).__name__}.")
    if net.units is None:
        raise DataError(f"{name} {net.label!r} has no UnitSpace; controls are matched per "
                        "layer and site, which needs one.")
    if net.n_units == 0:
        raise DataError(f"{name} {net.label!r} is empty: there is nothing to match.")


def unit_magnitude(recording, *, runs=None, units=None):
    """Mean absolute activation of every unit of a recording (for magnitude-matched controls).

    Parameters
    ----------
    recording : Recording or RecordingSubset
    runs : list of int, optional
    units : UnitSpace, optional
        Check that the recording holds exactly these units (a network's).

    Returns
    -------
    UnitMap
        ``output_type="effect_size"``, one mean ``|activation|`` per unit.
    """
    if units is not None and not (recording.units is units or recording.units == units):
        raise DataError(
            f"The magnitude recording has units {recording.units!r}, but the network is over "
            f"{units!r}; give a recording of the same sites and units."
        )
    runs = list(recording.runs) if runs is None else list(runs)
    total, n = np.zeros(recording.units.n_units), 0
    for run in runs:
        frames = recording.frames(run)
        n_frames = frames.shape[0]
        for a in range(0, n_frames, 256):
            block = np.abs(np.asarray(frames[a:a + 256], dtype=np.float64))
            total += block.sum(axis=0)
            n += block.shape[0]
    if n == 0:
        raise DataError("The magnitude recording has no frames.")
    return UnitMap(total / n, recording.units, output_type="effect_size",
                   contrast="mean |activation|")


def _bins(values, n_bins):
    """Quantile bin (0..n_bins-1) of each value by rank (ties by order)."""
    ranks = np.empty(values.size, dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(values.size)
    return (ranks * n_bins) // max(values.size, 1)


def random_controls(network, n=5, *, exclude=True, avoid=None, magnitude=None, n_bins=10,
                    random_state=None, label=None):
    """Random networks with the same number of units in each layer and site as ``network``.

    The matched controls of a lesion (AlKhamissi et al. 2025 draw 3, outside
    the localized units). Each draw takes, in every site, as many units as
    the network has there, uniformly without replacement; with
    ``magnitude``, also within quantile bins of the units' activation
    magnitude in that site, so the control units are as large as the lesioned
    ones (zeroing a unit removes its magnitude).

    Parameters
    ----------
    network : Network
        The lesioned units (with a UnitSpace).
    n : int, default=5
        Number of draws.
    exclude : bool, default=True
        Draw outside the network's units.
    avoid : Network or array of bool (n_total,) or of int (columns), optional
        Units never drawn either (e.g. a model's "massive activation" units,
        which a network may not contain but a magnitude-matched draw would).
    magnitude : UnitMap, array of shape (n_total,) or Recording, optional
        Per-unit magnitude (e.g. :func:`unit_magnitude` of a reference
        recording; a recording is reduced with it). Matching is per site,
        within ``n_bins`` quantile bins of the site's units; when a bin has
        too few candidates, the nearest bins make up the difference (a
        warning says how many units).
    n_bins : int, default=10
    random_state : int or numpy Generator, optional
    label : str, optional
        Prefix of the controls' labels (default ``"random"``).

    Returns
    -------
    list of Network
        ``rule="random"``, labelled ``<label>-<k>(<network label>)``; each
        has exactly the network's per-site counts.

    Raises
    ------
    DataError
        When a site has fewer units outside the network than the network
        has inside it (with ``exclude``), or the magnitudes do not fit.
    """
    _check_network(network)
    n = check_positive_int("n", n)
    n_bins = check_positive_int("n_bins", n_bins)
    rng = check_random_state(random_state)
    units = network.units
    mag = None
    if magnitude is not None:
        if hasattr(magnitude, "runs") and hasattr(magnitude, "units"):
            magnitude = unit_magnitude(magnitude, units=units)
        mag = np.asarray(getattr(magnitude, "values", magnitude), dtype=np.float64)
        if mag.shape != (network.n_total,):
            raise DataError(f"magnitude must have one value per unit ({network.n_total}), but "
                            f"has shape {mag.shape}.")
        if not np.isfinite(mag).all():
            raise DataError("magnitude has NaN or infinite values.")
    sites = units.table["site"].to_numpy()
    mask = network.mask
    banned = mask.copy() if exclude else np.zeros(network.n_total, dtype=bool)
    if avoid is not None:
        av = np.asarray(getattr(avoid, "mask", avoid))
        if av.dtype != bool:
            cols = av.astype(np.int64)
            av = np.zeros(network.n_total, dtype=bool)
            av[cols] = True
        if av.shape != (network.n_total,):
            raise DataError(f"avoid must cover the network's {network.n_total} units, but has "
                            f"shape {av.shape}.")
        banned |= av
    plan = []  # (candidate indices, bin codes or None, units wanted per bin)
    for site in dict.fromkeys(sites):
        idx = np.flatnonzero(sites == site)
        want = int(mask[idx].sum())
        if not want:
            continue
        pool = idx[~banned[idx]]
        if pool.size < want:
            raise DataError(
                f"Site {site!r} has {want} network units but only {pool.size} other units to "
                "draw a control from; use exclude=False, avoid fewer units or a smaller network."
            )
        if mag is None:
            plan.append((pool, None, want))
        else:
            codes = np.empty(network.n_total, dtype=np.int64)
            codes[idx] = _bins(mag[idx], min(n_bins, idx.size))
            need = np.bincount(codes[idx[mask[idx]]], minlength=n_bins)
            plan.append((pool, codes[pool], need))
    controls, short = [], 0
    for k in range(n):
        out = np.zeros(network.n_total, dtype=bool)
        for pool, codes, want in plan:
            if codes is None:
                out[rng.choice(pool, size=want, replace=False)] = True
                continue
            taken = np.zeros(pool.size, dtype=bool)
            deficit = []
            for b in np.flatnonzero(want):
                cand = np.flatnonzero(codes == b)
                m = min(int(want[b]), cand.size)
                taken[rng.choice(cand, size=m, replace=False)] = True
                if m < want[b]:
                    deficit.append((b, int(want[b]) - m))
            for b, missing in deficit:  # nearest bins first
                short += missing
                order = np.argsort(np.abs(codes - b) + rng.random(codes.size) * 0.5,
                                   kind="stable")
                free = [i for i in order if not taken[i]][:missing]
                taken[free] = True
            out[pool[taken]] = True
        controls.append(Network(out, units, label=f"{label or 'random'}-{k}({network.label})",
                                rule="random", inference=None, tail=None))
    if short:
        warn(f"random_controls: {short} of {n * network.n_units} control units were drawn from "
             "a neighbouring magnitude bin (too few candidates in their own bin); use fewer "
             "n_bins for exact matching.", UserWarning)
    logger.info("random_controls: %d draws of %d units matched per site%s", n, network.n_units,
                " and magnitude bin" if mag is not None else "")
    return controls


def least_selective(stat_map, *, like=None, fraction=None, k=None, match=None, label=None):
    """The least selective units: the bottom of the localizer statistic.

    The second control of localizer lesions (AlKhamissi et al. 2025: the
    units at the bottom of the selectivity ranking).

    Parameters
    ----------
    stat_map : TaskMap or UnitMap
        The localizer statistic (the map the lesioned network was cut from).
    like : Network, optional
        The lesioned network: take as many units as it has (in all, or in
        each site with ``match="layer"``).
    fraction, k : optional
        Without ``like``: the share or number of units (default 1 %).
    match : {None, "layer"}, default=None
        ``"layer"``: the bottom units of each site, as many as ``like`` has there.
    label : str, optional

    Returns
    -------
    Network
        Ranked by the negative statistic (``tail="negative"``).
    """
    check_option("match", match, (None, "layer"))
    if not isinstance(stat_map, (TaskMap, UnitMap)):
        raise TypeError(f"stat_map must be a TaskMap or a UnitMap, but got "
                        f"{type(stat_map).__name__}.")
    if like is not None:
        _check_network(like, "like")
        if fraction is not None or k is not None:
            raise ValueError("Give like= or fraction/k, not both.")
        if match is None:
            k = like.n_units
    elif match == "layer":
        raise ValueError("match='layer' needs like= (the lesioned network) for its counts.")
    label = label or (f"bottom({like.label})" if like is not None else None)
    if match is None:
        net = top_k(stat_map, fraction=fraction, k=k, tail="negative", label=label)
        return net
    values = np.asarray(stat_map.z.values if isinstance(stat_map, TaskMap) else stat_map.values,
                        dtype=np.float64)
    if values.shape != (like.n_total,):
        raise DataError(f"stat_map has {values.size} units but the network has {like.n_total}.")
    sites = like.units.table["site"].to_numpy()
    mask = np.zeros(like.n_total, dtype=bool)
    for site in dict.fromkeys(sites):
        idx = np.flatnonzero(sites == site)
        want = int(like.mask[idx].sum())
        if want:
            order = np.lexsort((idx, values[idx]))  # smallest first, ties by column
            mask[idx[order[:want]]] = True
    source = stat_map.z if isinstance(stat_map, TaskMap) else stat_map
    return Network(mask, like.units, label=label, contrast=source.contrast,
                   inference=source.inference, rule="top_k", tail="negative", k=like.n_units,
                   per_layer=True, stat_map=source)


def compare_to_controls(effect, controls, *, alternative="greater"):
    """A lesion's effect against its controls' effects.

    Parameters
    ----------
    effect : float
        The lesion's effect (e.g. lesioned - intact perplexity).
    controls : array of float
        The same effect for each control draw.
    alternative : {"greater", "less", "two-sided"}, default="greater"
        Which effects count as at least as extreme: larger (a perplexity
        deficit), smaller (an accuracy deficit), or larger in magnitude.

    Returns
    -------
    dict
        ``effect``, ``control_mean``, ``control_median``, ``control_sd``
        (ddof=1), ``control_min``, ``control_max``, ``n_controls``, ``z``
        (``(effect - mean) / sd``; lesions of random units can have heavy
        tails -- one draw that hits a unit of a "massive activation" --, so
        read the median and the empirical p too) and
        ``p_empirical = (1 + #controls at least as extreme) / (1 + n)``, the
        smallest attainable being ``1 / (1 + n)``.
    """
    check_option("alternative", alternative, ALTERNATIVES)
    c = np.asarray(controls, dtype=np.float64).ravel()
    effect = float(effect)
    n = c.size
    if alternative == "greater":
        extreme = int(np.sum(c >= effect))
    elif alternative == "less":
        extreme = int(np.sum(c <= effect))
    else:
        extreme = int(np.sum(np.abs(c) >= abs(effect)))
    sd = float(np.std(c, ddof=1)) if n > 1 else float("nan")
    mean = float(np.mean(c)) if n else float("nan")
    return {"effect": effect, "control_mean": mean,
            "control_median": float(np.median(c)) if n else float("nan"), "control_sd": sd,
            "control_min": float(c.min()) if n else float("nan"),
            "control_max": float(c.max()) if n else float("nan"), "n_controls": n,
            "z": (effect - mean) / sd if n > 1 and sd > 0 else float("nan"),
            "p_empirical": (1 + extreme) / (1 + n), "alternative": alternative}


def control_profile_check(network, controls):
    """Per-site counts of a network and its controls (a table; all counts equal when matched)."""
    prof = network.layer_profile()[["site", "n_units"]].rename(columns={"n_units": "network"})
    for c in controls:
        prof[c.label] = c.layer_profile()["n_units"].to_numpy()
    return pd.DataFrame(prof)
