"""The multifractal spectrum of a weighted network (NeuroMFA, RESEARCH.md section 5).

Pure numpy/scipy: no torch, no matplotlib. Every node ``i`` with enough edges
in range gets a mass profile ``N_i(r) = 1 + #(neighbours at distance <= r)``; then

* ``Z_q(r) = sum_i (N_i(r) / N_i(D))**q``  (``D`` = the largest radius),
* ``tau(q)`` = OLS slope of ``ln Z_q(r)`` against ``ln(r / D)`` over all radii,
* ``alpha = d tau / d q``, ``f(alpha) = q * alpha - tau``,
* ``alpha0`` = alpha at the maximum of f, ``width`` = max alpha - min alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..exceptions import MultifractalError
from .._utils import check_option

__all__ = [
    "DEFAULT_Q",
    "MultifractalSpectrum",
    "MultifractalError",
    "multifractal_spectrum",
    "mass_profiles",
    "legendre_spectrum",
]

#: The published q grid: -3.0 to 3.0 in steps of 0.1 (61 values).
DEFAULT_Q = np.round(np.arange(-30, 31) / 10.0, 1)


@dataclass(frozen=True)
class MultifractalSpectrum:
    """A multifractal spectrum and the fits behind it.

    Attributes
    ----------
    q : ndarray of shape (n_q,)
        The moment orders.
    tau : ndarray of shape (n_q,)
        The mass exponents tau(q).
    alpha : ndarray of shape (n_alpha,)
        Hoelder exponents, ``d tau / d q`` (``n_alpha = n_q`` for the central
        derivative, ``n_q - 1`` for the forward one).
    f_alpha : ndarray of shape (n_alpha,)
        The spectrum f(alpha) = q alpha - tau.
    q_alpha : ndarray of shape (n_alpha,)
        The q at which each (alpha, f) pair is evaluated.
    alpha0 : float
        alpha at the maximum of f(alpha) (NeuroMFA's "regularity"; smaller = more regular).
    width : float
        max(alpha) - min(alpha) (NeuroMFA's "heterogeneity").
    radii : ndarray of shape (n_r,)
        The radii r (the sorted distinct rounded distances); ``radii[-1]`` is D.
    log_z : ndarray of shape (n_q, n_r)
        ln Z_q(r).
    r2 : ndarray of shape (n_q,)
        Coefficient of determination of each tau fit (how straight ln Z_q is).
    n_nodes, n_edges : int
        Nodes kept (enough edges in range) and their edges in range.
    params : dict
        The settings that produced it.
    """

    q: np.ndarray
    tau: np.ndarray
    alpha: np.ndarray
    f_alpha: np.ndarray
    q_alpha: np.ndarray
    alpha0: float
    width: float
    radii: np.ndarray
    log_z: np.ndarray
    r2: np.ndarray
    n_nodes: int
    n_edges: int
    params: dict = field(default_factory=dict)

    @property
    def diameter(self):
        """D, the largest radius."""
        return float(self.radii[-1])

    def __repr__(self):
        return (f"MultifractalSpectrum(alpha0={self.alpha0:.4f}, width={self.width:.4f}, "
                f"n_nodes={self.n_nodes}, n_edges={self.n_edges}, n_radii={len(self.radii)})")

    def to_frame(self):
        """The spectrum as a DataFrame with columns ``q, alpha, f_alpha, tau``.

        One row per (alpha, f) pair; ``tau`` is tau at ``q`` (the q column is ``q_alpha``).
        """
        import pandas as pd

        tau_at = np.interp(self.q_alpha, self.q, self.tau)
        return pd.DataFrame({"q": self.q_alpha, "alpha": self.alpha, "f_alpha": self.f_alpha,
                             "tau": tau_at})

    def plot(self, ax=None, **kwargs):
        """Plot f(alpha) against alpha; see :func:`llmfmri.multifractal.plot_spectra`."""
        from ._plotting import plot_spectra

        return plot_spectra([self], ax=ax, **kwargs)


# --------------------------------------------------------------------------- inputs
def _edge_list(distances):
    """Normalise ``distances`` to ``(node, dist, n_nodes)`` flat arrays.

    Accepts a sequence of 1-D arrays (one per node), a 2-D array (rows = nodes,
    NaN/inf = no edge), a scipy sparse matrix (row i, stored entries = distances
    from node i) or a :class:`NeuronNetwork` (anything with an ``edge_distances()`` method).
    """
    import scipy.sparse as sp

    if hasattr(distances, "edge_distances"):
        node, dist, n_nodes = distances.edge_distances()
        return np.asarray(node, dtype=np.int64), np.asarray(dist, dtype=np.float64), int(n_nodes)
    if sp.issparse(distances):
        m = sp.coo_array(distances)
        if m.shape[0] != m.shape[1]:
            raise MultifractalError(
                "A sparse distances matrix must be square (nodes x nodes), but has shape "
                f"{m.shape}."
            )
        return m.row.astype(np.int64), m.data.astype(np.float64), m.shape[0]
    if isinstance(distances, np.ndarray) and distances.dtype != object:
        arr = np.asarray(distances, dtype=np.float64)
        if arr.ndim != 2:
            raise MultifractalError(
                "distances given as an array must have shape (n_nodes, n_neighbours) with NaN or "
                f"inf for missing edges, but got shape {arr.shape}. Pass a list of 1-D arrays "
                "for nodes with different numbers of neighbours."
            )
        node = np.repeat(np.arange(arr.shape[0]), arr.shape[1])
        return node, arr.ravel(), arr.shape[0]
    try:
        rows = [np.asarray(r, dtype=np.float64).ravel() for r in distances]
    except (TypeError, ValueError) as exc:
        raise MultifractalError(
            "distances must be a NeuronNetwork, a list of 1-D arrays of neighbour distances "
            "(one per node), a 2-D array (n_nodes, n_neighbours) or a square scipy sparse "
            f"matrix, but got {type(distances).__name__}: {exc}"
        ) from None
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    node = np.repeat(np.arange(len(rows)), lengths)
    dist = np.concatenate(rows) if rows else np.zeros(0)
    return node, dist, len(rows)


def _path_edge_list(distances, min_distance, max_distance):
    """Shortest-path distances (directed) up to ``max_distance`` as a flat edge list."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    node, dist, n_nodes = _edge_list(distances)
    if hasattr(distances, "edge_targets"):
        target = np.asarray(distances.edge_targets(), dtype=np.int64)
    elif sp.issparse(distances):
        target = sp.coo_array(distances).col.astype(np.int64)
    else:
        raise MultifractalError(
            "neighbourhood='path' needs a graph: pass a NeuronNetwork or a square scipy sparse "
            "matrix of edge distances, not per-node distance lists."
        )
    keep = np.isfinite(dist) & (dist > min_distance) & (dist <= max_distance)
    # parallel edges (e.g. gate and up projections) must keep the shortest one, not the sum
    order = np.lexsort((dist[keep], target[keep], node[keep]))
    s, t, d = node[keep][order], target[keep][order], dist[keep][order]
    first = np.ones(len(s), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    graph = sp.csr_array((d[first], (s[first], t[first])), shape=(n_nodes, n_nodes))
    sources = np.unique(s)
    out_node, out_dist = [], []
    chunk = max(1, int(2_000_000 // max(n_nodes, 1)))
    for start in range(0, len(sources), chunk):
        idx = sources[start:start + chunk]
        paths = dijkstra(graph, directed=True, indices=idx, limit=max_distance)
        rr, cc = np.nonzero(np.isfinite(paths) & (paths > 0))
        out_node.append(idx[rr])
        out_dist.append(paths[rr, cc])
    if not out_node:
        return np.zeros(0, np.int64), np.zeros(0), n_nodes
    return np.concatenate(out_node), np.concatenate(out_dist), n_nodes


# --------------------------------------------------------------------------- core
def mass_profiles(distances, *, min_distance=1.0, max_distance=150.0, decimals=0, min_edges=11,
                  neighbourhood="edge"):
    """Node mass profiles N_i(r) on the common radii.

    Parameters
    ----------
    distances : NeuronNetwork, list of array-like, ndarray or scipy sparse matrix
        Edge distances from each node: a :class:`NeuronNetwork` (distance ``1/|w|``
        from each source neuron to its targets), a list with one 1-D array of
        neighbour distances per node, a 2-D array ``(n_nodes, n_neighbours)`` with
        NaN or inf for missing edges, or a square sparse matrix (row = source).
    min_distance, max_distance : float
        Keep edges with ``min_distance < d <= max_distance`` (the published 1 and 150;
        the original emergence script used 200). Applied before rounding.
    decimals : int
        Round distances to this many decimals (published: 0, integers).
    min_edges : int
        Keep nodes with at least this many edges in range (published: more than 10, i.e. 11).
    neighbourhood : {"edge", "path"}
        ``"edge"`` (the reference implementation): a node's neighbours are its direct
        out-neighbours, at the edge distance. ``"path"``: every node reachable along
        directed edges in range, at the shortest-path distance (up to ``max_distance``).

    Returns
    -------
    counts : ndarray of shape (n_nodes_kept, n_radii)
        N_i(r) = 1 + number of neighbours within r, for each kept node.
    radii : ndarray of shape (n_radii,)
        The sorted distinct rounded distances of the kept nodes.
    kept : ndarray of shape (n_nodes_kept,)
        Index of each kept node in the input.
    n_edges : int
        Number of edges (in range) of the kept nodes.
    """
    check_option("neighbourhood", neighbourhood, ("edge", "path"), error=MultifractalError)
    if not (np.isfinite(max_distance) and max_distance > min_distance):
        raise MultifractalError(
            f"max_distance must be a finite number larger than min_distance ({min_distance}), "
            f"but got {max_distance!r}."
        )
    if int(min_edges) < 1:
        raise MultifractalError(f"min_edges must be at least 1, but got {min_edges!r}.")
    if neighbourhood == "path":
        node, dist, n_nodes = _path_edge_list(distances, min_distance, max_distance)
    else:
        node, dist, n_nodes = _edge_list(distances)
    if n_nodes == 0:
        raise MultifractalError("The network has no nodes.")
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(dist) & (dist > min_distance) & (dist <= max_distance)
    if not keep.any():
        finite = dist[np.isfinite(dist)]
        seen = (f"the finite distances found span [{finite.min():.4g}, {finite.max():.4g}]"
                if finite.size else "no finite distance was found (all weights zero?)")
        raise MultifractalError(
            f"No edge has a distance in ({min_distance}, {max_distance}]: {seen}. "
            "Check the weights, or widen min_distance/max_distance to the scale of the network."
        )
    node, dist = node[keep], np.round(dist[keep], int(decimals))
    n_per_node = np.bincount(node, minlength=n_nodes)
    kept = np.flatnonzero(n_per_node >= int(min_edges))
    if kept.size < 2:
        raise MultifractalError(
            f"Too few nodes: {kept.size} node(s) of {n_nodes} have at least min_edges={min_edges} "
            f"edges with distance in ({min_distance}, {max_distance}] (most edges at one node: "
            f"{int(n_per_node.max())}); at least 2 are needed. Sample more neurons per layer, "
            "lower min_edges or widen the distance range."
        )
    remap = np.full(n_nodes, -1, dtype=np.int64)
    remap[kept] = np.arange(kept.size)
    sel = remap[node] >= 0
    node, dist = remap[node[sel]], dist[sel]
    radii = np.unique(dist)
    if radii.size < 3:
        raise MultifractalError(
            f"The kept edges have only {radii.size} distinct rounded distance(s) {radii.tolist()}; "
            "at least 3 radii are needed to fit tau(q). Use more decimals or a wider range."
        )
    col = np.searchsorted(radii, dist)
    hist = np.bincount(node * radii.size + col, minlength=kept.size * radii.size)
    counts = 1.0 + np.cumsum(hist.reshape(kept.size, radii.size), axis=1)
    return counts, radii, kept, int(node.size)


def legendre_spectrum(q, tau, *, derivative="central"):
    """alpha = d tau/dq and f(alpha) = q alpha - tau by finite differences.

    Parameters
    ----------
    q, tau : array-like of shape (n_q,)
        The q grid (increasing) and tau(q).
    derivative : {"central", "forward"}
        ``"central"`` (default): ``alpha = numpy.gradient(tau, q)`` (second-order in the
        interior, one-sided at the ends) and ``f = q alpha - tau`` at every q.
        ``"forward"``: the reference code's scheme, ``alpha_k = (tau_k - tau_{k-1}) /
        (q_k - q_{k-1})`` and ``f_k = q_{k-1} alpha_k - tau_{k-1}`` for k = 1..n_q-1.

    Returns
    -------
    alpha, f_alpha, q_alpha : ndarray
        The exponents, the spectrum, and the q each pair belongs to.
    """
    check_option("derivative", derivative, ("central", "forward"), error=MultifractalError)
    q = np.asarray(q, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    if derivative == "forward":
        alpha = np.diff(tau) / np.diff(q)
        return alpha, q[:-1] * alpha - tau[:-1], q[:-1].copy()
    alpha = np.gradient(tau, q)
    return alpha, q * alpha - tau, q.copy()


def _check_q(q):
    q = DEFAULT_Q if q is None else np.asarray(q, dtype=np.float64).ravel()
    if q.size < 3 or not np.all(np.isfinite(q)) or np.any(np.diff(q) <= 0):
        raise MultifractalError(
            "q must be a strictly increasing array of at least 3 finite values (default: -3 to 3 "
            f"in steps of 0.1), but got {np.asarray(q).tolist()!r}."
        )
    return q


def _log_partition(counts, q):
    """ln Z_q(r) = ln sum_i (N_i(r)/N_i(D))**q, shape (n_q, n_radii).

    The masses are integers, so the ratios take few distinct values: Z is computed as
    ``exp(q u) @ C`` with u the distinct log-ratios and C their count per radius.
    """
    n, n_r = counts.shape
    cnt = np.rint(counts).astype(np.int64)
    if np.array_equal(cnt, counts) and n * n_r > 0:
        nd = cnt[:, -1:]
        base = int(nd.max()) + 1
        keys = cnt * base + nd
        if base * base <= 20_000_000:  # small integer keys: a lookup table instead of a sort
            present = np.bincount(keys.ravel(), minlength=base * base) > 0
            uniq = np.flatnonzero(present)
            lookup = np.cumsum(present) - 1
            inv = lookup[keys]
        else:
            uniq, inv = np.unique(keys, return_inverse=True)
        u = np.log(uniq // base) - np.log(uniq % base)
        col = np.broadcast_to(np.arange(n_r), (n, n_r))
        c = np.bincount(inv.ravel() * n_r + col.ravel(),
                        minlength=uniq.size * n_r).reshape(uniq.size, n_r)
        e = np.outer(q, u)
        shift = e.max(axis=1, keepdims=True)  # u contains 0 (r = D), so shift >= 0
        with np.errstate(divide="ignore", under="ignore"):
            log_z = np.log(np.exp(e - shift) @ c) + shift
        if np.all(np.isfinite(log_z)):
            return log_z
    # general (or extreme-q) path: per-(q, r) stabilised log-sum-exp over nodes
    log_ratio = np.log(counts) - np.log(counts[:, -1:])
    log_z = np.empty((q.size, n_r))
    for k, qk in enumerate(q):
        e = qk * log_ratio
        m = e.max(axis=0)
        log_z[k] = m + np.log(np.exp(e - m).sum(axis=0))
    return log_z


def spectrum_from_profiles(counts, radii, q=None, *, derivative="central", n_edges=None,
                           params=None):
    """The spectrum from mass profiles (see :func:`mass_profiles`)."""
    q = _check_q(q)
    counts = np.asarray(counts, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    x = np.log(radii / radii[-1])
    log_z = _log_partition(counts, q)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    yc = log_z - log_z.mean(axis=1, keepdims=True)
    tau = yc @ xc / sxx
    ss_tot = np.einsum("ij,ij->i", yc, yc)
    resid = yc - np.outer(tau, xc)
    ss_res = np.einsum("ij,ij->i", resid, resid)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a flat ln Z_q (q = 0, or a monofractal at any q) is fitted perfectly
        flat = ss_tot <= 1e-12 * max(1.0, float(ss_tot.max()))
        r2 = np.where(flat, 1.0, 1.0 - ss_res / np.where(flat, 1.0, ss_tot))
    alpha, f_alpha, q_alpha = legendre_spectrum(q, tau, derivative=derivative)
    i0 = int(np.argmax(f_alpha))
    return MultifractalSpectrum(
        q=q, tau=tau, alpha=alpha, f_alpha=f_alpha, q_alpha=q_alpha,
        alpha0=float(alpha[i0]), width=float(alpha.max() - alpha.min()), radii=radii,
        log_z=log_z, r2=r2, n_nodes=int(counts.shape[0]),
        n_edges=int(n_edges) if n_edges is not None else -1, params=dict(params or {}),
    )


def multifractal_spectrum(distances, *, q=None, min_distance=1.0, max_distance=150.0, decimals=0,
                          min_edges=11, derivative="central", neighbourhood="edge",
                          empty_layers="raise"):
    """NeuroMFA multifractal spectrum of a weighted network.

    Parameters
    ----------
    distances : NeuronNetwork, list of array-like, ndarray or scipy sparse matrix
        The network: a :class:`NeuronNetwork` from :func:`neuron_network` (distance
        ``d = 1/|w|`` from each source neuron to each of its sampled targets), or edge
        distances directly -- a list of 1-D arrays (neighbour distances of each node),
        a 2-D array ``(n_nodes, n_neighbours)`` with NaN/inf for no edge, or a square
        scipy sparse matrix whose row i holds the distances from node i.
    q : array-like, optional
        Moment orders, strictly increasing; default ``DEFAULT_Q`` (-3 to 3 step 0.1).
    min_distance, max_distance : float
        Edges with ``min_distance < d <= max_distance`` are kept (published: 1 and 150;
        the original emergence script used 200), before rounding.
    decimals : int
        Distances are rounded to this many decimals (published: 0).
    min_edges : int
        Nodes with fewer edges in range are dropped (published: "more than 10", so 11).
    derivative : {"central", "forward"}
        How alpha = d tau/dq is taken, see :func:`legendre_spectrum`. ``"forward"``
        is the reference code's exact scheme; ``"central"`` (default) puts alpha and f
        on the q grid, so that alpha0 is alpha at q = 0 without the reference's tie
        between q = -0.1 and q = 0 (both give f = 0 there).
    neighbourhood : {"edge", "path"}
        ``"edge"`` (default, as the reference): N_i(r) counts direct out-neighbours
        within r. ``"path"``: nodes reachable within shortest-path distance r.
    empty_layers : {"raise", "warn", "ignore"}
        For a NeuronNetwork: what to do when a weight matrix of a block has no sampled
        edge in range (a sign that the distance range does not fit the weight scale).

    Returns
    -------
    MultifractalSpectrum

    Raises
    ------
    MultifractalError
        No edge in range (e.g. all-zero weights), a layer with no edge in range
        (``empty_layers="raise"``), fewer than 2 nodes with ``min_edges`` edges, or
        fewer than 3 distinct radii.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.multifractal import multifractal_spectrum
    >>> # each node has round(r**1.5) - 1 neighbours within r: tau(q) = 1.5 q
    >>> r = np.arange(2, 151)
    >>> per_r = np.diff(np.round(np.arange(1, 151) ** 1.5)).astype(int)
    >>> node = np.repeat(r, per_r).astype(float)
    >>> spec = multifractal_spectrum([node] * 5)
    >>> round(spec.alpha0, 2), round(spec.width, 3)
    (1.5, 0.0)
    """
    check_option("empty_layers", empty_layers, ("raise", "warn", "ignore"),
                 error=MultifractalError)
    if empty_layers != "ignore" and hasattr(distances, "check_edges_in_range"):
        distances.check_edges_in_range(min_distance, max_distance,
                                       action=empty_layers)
    counts, radii, kept, n_edges = mass_profiles(
        distances, min_distance=min_distance, max_distance=max_distance, decimals=decimals,
        min_edges=min_edges, neighbourhood=neighbourhood)
    params = dict(min_distance=min_distance, max_distance=max_distance, decimals=decimals,
                  min_edges=min_edges, derivative=derivative, neighbourhood=neighbourhood)
    return spectrum_from_profiles(counts, radii, q, derivative=derivative, n_edges=n_edges,
                                  params=params)
