"""Overlap of networks: Dice, Jaccard, overlap coefficient, conjunction, layer-matched tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._utils import check_option, check_positive_int, check_random_state
from ..exceptions import DataError
from ..glm import UnitMap
from ._network import Network, check_compatible, check_same_units, site_strata
from ._taskmap import TaskMap

__all__ = ["dice", "jaccard", "overlap_coefficient", "overlap_matrix", "conjunction",
           "overlap_test", "OverlapTest", "overlap_test_matrix", "OverlapMatrix", "METRICS"]

#: Overlap metrics by name.
METRICS = ("dice", "jaccard", "overlap_coefficient", "intersection")


def _pair(a, b):
    if isinstance(a, Network) and isinstance(b, Network):
        check_compatible(a, b)
        return a.mask, b.mask
    ma, mb = (x.mask if isinstance(x, Network) else np.asarray(x) for x in (a, b))
    for name, m in (("a", ma), ("b", mb)):
        if m.ndim != 1 or not (m.dtype == bool or np.isin(m, (0, 1)).all()):
            raise DataError(f"{name} must be a Network or a 1-D boolean mask, but got an array "
                            f"of shape {m.shape} and dtype {m.dtype}.")
    if ma.shape != mb.shape:
        raise DataError(f"The masks have different sizes: {ma.shape} and {mb.shape}.")
    return ma.astype(bool), mb.astype(bool)


def _from_counts(metric, inter, na, nb):
    """Metric from the intersection size(s) and the two sizes (0 when undefined)."""
    inter = np.asarray(inter, dtype=float)
    if metric == "intersection":
        return inter
    if metric == "dice":
        den = float(na + nb)
        return 2.0 * inter / den if den else np.zeros_like(inter)
    if metric == "jaccard":
        den = na + nb - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, inter / np.where(den > 0, den, 1.0), 0.0)
    den = float(min(na, nb))
    return inter / den if den else np.zeros_like(inter)


def _metric(metric, a, b):
    ma, mb = _pair(a, b)
    return float(_from_counts(metric, int((ma & mb).sum()), int(ma.sum()), int(mb.sum())))


def dice(a, b):
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of two networks (Dice 1945).

    Parameters
    ----------
    a, b : Network or boolean mask of shape (n_units,)

    Returns
    -------
    float
        In [0, 1]; 0 when both are empty.

    Raises
    ------
    DataError
        For networks over different units or masks of different sizes.

    Examples
    --------
    >>> from llmfmri.networks import dice
    >>> dice([1, 1, 0, 0], [0, 1, 1, 0])
    0.5
    """
    return _metric("dice", a, b)


def jaccard(a, b):
    """Jaccard index ``|A & B| / |A | B|`` (0 when both are empty; Jaccard 1912).

    Examples
    --------
    >>> from llmfmri.networks import jaccard
    >>> round(jaccard([1, 1, 0, 0], [0, 1, 1, 0]), 4)
    0.3333
    """
    return _metric("jaccard", a, b)


def overlap_coefficient(a, b):
    """Overlap (Szymkiewicz-Simpson) coefficient ``|A & B| / min(|A|, |B|)`` (0 if one is empty).

    1 when the smaller network lies inside the larger.

    Examples
    --------
    >>> from llmfmri.networks import overlap_coefficient
    >>> overlap_coefficient([1, 1, 0, 0], [1, 1, 1, 0])
    1.0
    """
    return _metric("overlap_coefficient", a, b)


def _labelled(networks):
    if isinstance(networks, dict):
        items = list(networks.items())
    else:
        items = [(n.label if isinstance(n, Network) else None, n) for n in networks]
    if len(items) < 1:
        raise DataError("networks is empty.")
    for lab, net in items:
        if not isinstance(net, Network):
            raise TypeError(f"Every network must be a Network, but {lab!r} is "
                            f"{type(net).__name__}.")
    labels = [str(lab) for lab, _ in items]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise DataError(f"Network labels must be unique, but {dup[0]!r} appears more than once; "
                        "pass a dict {label: network}.")
    for _, net in items[1:]:
        check_compatible(items[0][1], net)
    return labels, [net for _, net in items]


def overlap_matrix(networks, metric="dice"):
    """Pairwise overlap of networks as a labelled square table.

    Parameters
    ----------
    networks : dict label -> Network, or list of Network (labelled by ``.label``)
    metric : {"dice", "jaccard", "overlap_coefficient", "intersection"}, default="dice"

    Returns
    -------
    pandas.DataFrame of shape (n_networks, n_networks)
        Index and columns are the labels; the diagonal is 1 (0 for an empty
        network; its size for ``"intersection"``).

    Examples
    --------
    >>> from llmfmri.networks import Network, overlap_matrix
    >>> nets = {"a": Network([1, 1, 0, 0]), "b": Network([0, 1, 1, 0])}
    >>> overlap_matrix(nets)
         a    b
    a  1.0  0.5
    b  0.5  1.0
    """
    check_option("metric", metric, METRICS)
    labels, nets = _labelled(networks)
    M = np.vstack([n.mask for n in nets]).astype(np.int64)
    inter = M @ M.T
    sizes = M.sum(axis=1)
    out = np.empty(inter.shape)
    for i in range(len(nets)):
        for j in range(len(nets)):
            out[i, j] = _from_counts(metric, inter[i, j], sizes[i], sizes[j])
    return pd.DataFrame(out, index=pd.Index(labels, name=None), columns=labels)


def conjunction(items, *, tail="positive", label=None):
    """Conjunction of maps (minimum statistic) or of networks (intersection).

    For maps, the minimum-statistic conjunction (Nichols et al. 2005, "Valid
    conjunction inference with the minimum statistic", NeuroImage 25:653):
    a unit is in the conjunction when *every* map is significant there, which
    is what thresholding the minimum z at the level of one map tests (the
    conjunction null). The p value of the minimum z is the largest of the
    maps' p values, whatever their degrees of freedom.

    Parameters
    ----------
    items : list of TaskMap, list of UnitMap (z), or list of Network
        At least two, over the same units. TaskMaps must share their
        inference.
    tail : {"positive", "negative"}, default="positive"
        Conjunction of positive effects (minimum z) or of negative effects
        (maximum z). Networks ignore it.
    label : str, optional
        Default ``"a & b & ..."``.

    Returns
    -------
    TaskMap, UnitMap or Network
        The same kind as the inputs; threshold the map with
        :func:`threshold` (a permutation conjunction keeps the largest
        family-wise p of its maps, for ``correction="maxt"``).

    Raises
    ------
    DataError
        For fewer than two items, mixed kinds, different units or inferences.

    Examples
    --------
    >>> from llmfmri.glm import UnitMap
    >>> from llmfmri.networks import conjunction
    >>> c = conjunction([UnitMap([3.0, 1.0, -2.0]), UnitMap([2.0, 4.0, 5.0])])
    >>> c.values.tolist()
    [2.0, 1.0, -2.0]
    """
    check_option("tail", tail, ("positive", "negative"))
    items = list(items)
    if len(items) < 2:
        raise DataError(f"A conjunction needs at least 2 maps or networks, but got {len(items)}.")
    kinds = {("network" if isinstance(x, Network) else "taskmap" if isinstance(x, TaskMap)
              else "unitmap" if isinstance(x, UnitMap) else type(x).__name__) for x in items}
    if len(kinds) != 1 or not kinds <= {"network", "taskmap", "unitmap"}:
        raise DataError(f"conjunction needs all Networks, all TaskMaps or all UnitMaps, but got "
                        f"{sorted(kinds)}.")
    kind = kinds.pop()
    if kind == "network":
        out = items[0]
        for net in items[1:]:
            out = out & net
        out.label = label or " & ".join(n.label for n in items)
        return out
    zmaps = [x.z if kind == "taskmap" else x for x in items]
    for m in zmaps:
        if m.output_type != "z_score" or m.values.ndim != 1:
            raise DataError(f"conjunction needs z maps (output_type 'z_score'), but got "
                            f"{m.output_type!r}.")
    for m in zmaps[1:]:
        check_same_units(zmaps[0].units, m.units, what="maps")
    Z = np.vstack([m.values for m in zmaps])
    z = Z.min(axis=0) if tail == "positive" else Z.max(axis=0)
    name = label or " & ".join(str(m.contrast) for m in zmaps)
    inferences = {m.inference for m in zmaps}
    inference = inferences.pop() if len(inferences) == 1 else None
    zmap = zmaps[0]._replace(z, contrast=name, inference=inference, dof=None)
    if kind == "unitmap":
        return zmap
    infs = {x.inference for x in items}
    if len(infs) != 1:
        raise DataError(f"The maps of a conjunction must share their inference, but got "
                        f"{sorted(infs)}.")
    p_fwer = None
    first = items[0]
    if first.inference == "permutation":
        if len({x.two_sided for x in items}) != 1:
            raise DataError("Permutation maps of a conjunction must all be one-sided or all "
                            "two-sided.")
        p_fwer = first.p_fwer._replace(np.max(np.vstack([x.p_fwer.values for x in items]),
                                              axis=0), contrast=name)
    return TaskMap(z=zmap, effect=None, inference=first.inference, contrast=name,
                   dof=float(min(x.dof for x in items)), n_samples=min(x.n_samples for x in items),
                   by=first.by, p_fwer=p_fwer, two_sided=first.two_sided,
                   n_permutations=first.n_permutations)


# ------------------------------------------------------------------ overlap test
@dataclass(frozen=True, eq=False)
class OverlapTest:
    """Overlap of two networks against random networks of the same layer profile.

    Attributes
    ----------
    a, b : str
        Labels of the networks.
    metric : str
    observed : float
        The metric of the two networks.
    null : ndarray of shape (n_permutations,)
        The metric of each pair of random networks.
    p_value : float
        ``(1 + #{null >= observed}) / (n_permutations + 1)`` (``<=`` for
        ``alternative="less"``).
    p_exact : float
        The same tail probability from the exact null distribution (a
        convolution of hypergeometric laws), without Monte Carlo error
        (0 when it is below the range of floating point, ~1e-308).
    intersection : int
        Units in both networks.
    n_a, n_b : int
        Network sizes.
    expected_intersection : float
        ``sum_l a_l b_l / N_l`` over strata.
    match : str or None
    alternative : str
    """

    a: str
    b: str
    metric: str
    observed: float
    null: np.ndarray = field(repr=False)
    p_value: float
    p_exact: float
    intersection: int
    n_a: int
    n_b: int
    expected_intersection: float
    match: str | None
    alternative: str

    @property
    def n_permutations(self):
        """Number of random network pairs drawn."""
        return int(self.null.size)

    @property
    def null_mean(self):
        """Mean of the metric over random networks (chance overlap)."""
        return float(self.null.mean())

    def to_frame(self):
        """The test as a one-row DataFrame."""
        return pd.DataFrame([{
            "a": self.a, "b": self.b, "metric": self.metric, "observed": self.observed,
            "null_mean": self.null_mean, "p_value": self.p_value, "p_exact": self.p_exact,
            "intersection": self.intersection, "n_a": self.n_a, "n_b": self.n_b,
            "expected_intersection": self.expected_intersection,
            "n_permutations": self.n_permutations, "match": self.match,
            "alternative": self.alternative}])


def _strata_counts(a, b, match):
    if match == "layer" and a.units is None:
        raise DataError("match='layer' needs the networks' UnitSpace, but they have none; use "
                        "match=None.")
    strata, _ = site_strata(a.units if match == "layer" else None, a.n_total)
    L = int(strata.max()) + 1
    N = np.bincount(strata, minlength=L)
    na = np.bincount(strata, weights=a.mask, minlength=L).astype(np.int64)
    nb = np.bincount(strata, weights=b.mask, minlength=L).astype(np.int64)
    return N, na, nb


def _exact_pmf(N, na, nb):
    """pmf of the total intersection of random subsets (sizes na, nb) per stratum of sizes N."""
    from scipy import stats

    pmf = np.ones(1)
    for n_l, a_l, b_l in zip(N, na, nb):
        if a_l == 0 or b_l == 0:
            continue
        lo, hi = max(0, a_l + b_l - n_l), min(a_l, b_l)
        k = np.arange(hi + 1)
        p_l = np.where(k >= lo, stats.hypergeom.pmf(k, n_l, b_l, a_l), 0.0)
        pmf = np.convolve(pmf, p_l)
    return pmf


def _pair_test(a, b, metric, n_permutations, match, alternative, rng):
    check_compatible(a, b)
    N, na, nb = _strata_counts(a, b, match)
    inter = int((a.mask & b.mask).sum())
    size_a, size_b = int(na.sum()), int(nb.sum())
    live = (na > 0) & (nb > 0)
    draws = np.zeros(n_permutations, dtype=np.int64)
    if live.any():
        # the intersection of a random na_l-subset with a random nb_l-subset of N_l units is
        # hypergeometric: nb_l "good" units, na_l drawn
        draws = rng.hypergeometric(nb[live], N[live] - nb[live], na[live],
                                   size=(n_permutations, int(live.sum()))).sum(axis=1)
    pmf = _exact_pmf(N, na, nb)
    if alternative == "greater":
        exceed = int((draws >= inter).sum())
        p_exact = float(pmf[inter:].sum()) if inter < pmf.size else 0.0
    else:
        exceed = int((draws <= inter).sum())
        p_exact = float(pmf[:inter + 1].sum())
    return OverlapTest(
        a=a.label, b=b.label, metric=metric,
        observed=float(_from_counts(metric, inter, size_a, size_b)),
        null=np.asarray(_from_counts(metric, draws, size_a, size_b), dtype=float),
        p_value=(1.0 + exceed) / (n_permutations + 1.0), p_exact=min(p_exact, 1.0),
        intersection=inter, n_a=size_a, n_b=size_b,
        expected_intersection=float(np.sum(na * nb / np.maximum(N, 1))),
        match=match, alternative=alternative)


def overlap_test(a, b, *, metric="dice", n_permutations=1000, match="layer",
                 alternative="greater", random_state=None):
    """Is the overlap of two networks larger than that of random networks of the same profile?

    The null draws, for each network, a random network with the same number
    of units in every site (layer of a component; or in all, ``match=None``),
    independently, and computes the metric. The intersection of a random
    subset of ``a_l`` units with a random subset of ``b_l`` units of the
    ``N_l`` units of a site is hypergeometric, so each draw costs one
    hypergeometric number per site (memory O(n_sites)), and the exact null
    is their convolution. For fixed sizes every metric is increasing in the
    intersection, so all metrics give the same p value.

    Parameters
    ----------
    a, b : Network
        Over the same units.
    metric : {"dice", "jaccard", "overlap_coefficient", "intersection"}, default="dice"
    n_permutations : int, default=1000
    match : {"layer", None}, default="layer"
    alternative : {"greater", "less"}, default="greater"
        More overlap than chance, or less (segregation).
    random_state : int or numpy Generator, optional

    Returns
    -------
    OverlapTest
        ``observed``, ``null``, ``null_mean``, ``p_value``
        (``(1 + #{null >= observed}) / (n + 1)``) and ``p_exact``.

    Raises
    ------
    DataError
        For networks over different units, or ``match="layer"`` without units.

    Examples
    --------
    >>> from llmfmri.networks import Network, overlap_test
    >>> a = Network([1] * 10 + [0] * 90, label="a")
    >>> b = Network([1] * 8 + [0] * 92, label="b")
    >>> res = overlap_test(a, b, match=None, random_state=0)
    >>> res.observed, res.p_value < 0.01
    (0.8888888888888888, True)
    """
    check_option("metric", metric, METRICS)
    check_option("match", match, ("layer", None))
    check_option("alternative", alternative, ("greater", "less"))
    n_permutations = check_positive_int("n_permutations", n_permutations)
    for name, net in (("a", a), ("b", b)):
        if not isinstance(net, Network):
            raise TypeError(f"{name} must be a Network, but got {type(net).__name__}.")
    return _pair_test(a, b, metric, n_permutations, match, alternative,
                      check_random_state(random_state))


@dataclass(frozen=True, eq=False)
class OverlapMatrix:
    """Overlap tests of every pair of networks (:func:`overlap_test_matrix`).

    Attributes
    ----------
    observed, null_mean, p_value, p_exact : pandas.DataFrame
        Square tables indexed by network label (diagonal: NaN for the tests).
    tests : dict of (label, label) -> OverlapTest
    metric : str
    """

    observed: pd.DataFrame
    null_mean: pd.DataFrame
    p_value: pd.DataFrame
    p_exact: pd.DataFrame
    tests: dict = field(repr=False)
    metric: str

    def to_frame(self):
        """One row per pair (``a < b`` in the given order): observed, null mean, p values."""
        return pd.concat([t.to_frame() for t in self.tests.values()], ignore_index=True)


def overlap_test_matrix(networks, *, metric="dice", n_permutations=1000, match="layer",
                        alternative="greater", random_state=None):
    """:func:`overlap_test` for every pair of networks.

    Parameters
    ----------
    networks : dict label -> Network, or list of Network
    metric, n_permutations, match, alternative, random_state
        As in :func:`overlap_test` (one generator serves every pair).

    Returns
    -------
    OverlapMatrix
        ``.observed``, ``.null_mean``, ``.p_value``, ``.p_exact`` (square,
        symmetric DataFrames) and ``.to_frame()`` (one row per pair).
    """
    check_option("metric", metric, METRICS)
    check_option("match", match, ("layer", None))
    check_option("alternative", alternative, ("greater", "less"))
    n_permutations = check_positive_int("n_permutations", n_permutations)
    labels, nets = _labelled(networks)
    rng = check_random_state(random_state)
    n = len(nets)
    frames = {k: pd.DataFrame(np.full((n, n), np.nan), index=labels, columns=labels)
              for k in ("observed", "null_mean", "p_value", "p_exact")}
    tests = {}
    for i in range(n):
        frames["observed"].iloc[i, i] = _from_counts(metric, nets[i].n_units, nets[i].n_units,
                                                     nets[i].n_units)
        for j in range(i + 1, n):
            t = _pair_test(nets[i], nets[j], metric, n_permutations, match, alternative, rng)
            t = OverlapTest(**{**t.__dict__, "a": labels[i], "b": labels[j]})
            tests[(labels[i], labels[j])] = t
            for key in frames:
                value = getattr(t, key)
                frames[key].iloc[i, j] = frames[key].iloc[j, i] = value
    return OverlapMatrix(**frames, tests=tests, metric=metric)
