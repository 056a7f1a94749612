"""Synthetic networks whose multifractal spectrum is known in advance."""

from __future__ import annotations

import numpy as np

from ._spectrum import MultifractalError

__all__ = ["make_power_law_network"]


def make_power_law_network(exponents, *, max_distance=150, n_neighbours=None, random_state=None):
    """Neighbour distances such that node i's mass grows as ``N_i(r) ~ r**a_i``.

    If every node has the same exponent ``a`` then ``N_i(r)/N_i(D) = (r/D)**a``,
    ``Z_q(r) = n (r/D)**(q a)`` and ``tau(q) = q a``: alpha = a everywhere,
    f(alpha) = 0 and the width is 0. With two populations of exponents
    ``a1 < a2``, large positive q is dominated by the a1 nodes and large negative
    q by the a2 nodes, so alpha spans about ``[a1, a2]``.

    Parameters
    ----------
    exponents : array-like of shape (n_nodes,)
        The exponent a_i of each node (positive).
    max_distance : int
        D, the largest distance (use the same ``max_distance`` in the analysis).
    n_neighbours : int, optional
        ``None`` (default, exact): node i has ``round(r**a_i) - 1`` neighbours
        within every integer radius r in 1..D, so ``N_i(r) = round(r**a_i)``
        exactly at the radii the analysis uses (``D**a_i - 1`` neighbours per node).
        An int: each node draws this many distances ``d = D * u**(1/a_i)``,
        ``u ~ U(0, 1)`` (so ``P(d <= r) = (r/D)**a_i``); distances ``<= 1`` are
        discarded by the analysis, so ``N_i(r) ~ 1 + n (r/D)**a_i``.
    random_state : int or numpy Generator, optional
        Exact mode: if given, distances are jittered within their rounding bin
        ``(r - 0.49, r]`` and shuffled (the analysis rounds them back). Sampling
        mode: the generator of the draws.

    Returns
    -------
    list of ndarray
        One array of neighbour distances per node, for :func:`multifractal_spectrum`.

    Examples
    --------
    >>> from llmfmri.multifractal import make_power_law_network, multifractal_spectrum
    >>> spec = multifractal_spectrum(make_power_law_network([1.0] * 10))
    >>> round(spec.alpha0, 6), round(spec.width, 6)
    (1.0, 0.0)
    """
    a = np.asarray(exponents, dtype=np.float64).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise MultifractalError(
            f"exponents must be a non-empty array of positive numbers, but got {a.tolist()!r}.")
    D = int(max_distance)
    if D != max_distance or D < 3:
        raise MultifractalError(f"max_distance must be an integer >= 3, but got {max_distance!r}.")
    rng = np.random.default_rng(random_state)
    if n_neighbours is not None:
        n = int(n_neighbours)
        if n < 1:
            raise MultifractalError(f"n_neighbours must be positive, but got {n_neighbours!r}.")
        return [D * rng.random(n) ** (1.0 / ai) for ai in a]
    total = float(np.sum(np.round(D ** a)))
    if total > 5e7:
        raise MultifractalError(
            f"The exact construction needs {total:.3g} distances (D**a per node); lower "
            "max_distance or the exponents, or pass n_neighbours to sample instead.")
    radii = np.arange(1, D + 1, dtype=np.float64)
    out = []
    for ai in a:
        per_r = np.diff(np.round(radii ** ai)).astype(np.int64)  # new neighbours at r = 2..D
        d = np.repeat(radii[1:], per_r)
        if random_state is not None:
            d = d - 0.49 * rng.random(d.size)
            rng.shuffle(d)
        out.append(d)
    return out
