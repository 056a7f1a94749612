"""The degree of emergence E(t) (NeuroMFA, RESEARCH.md section 5)."""

from __future__ import annotations

import numpy as np

from ._spectrum import MultifractalError

__all__ = ["degree_of_emergence"]


def degree_of_emergence(alpha0, width, *, reference=0):
    """Degree of emergence ``E(t) = (w(t) / w(t0)) * ln(alpha0(t0) / alpha0(t))``.

    E grows when the spectrum widens (more heterogeneous interactions) and moves
    left (more regular ones); ``E(t0) = 0`` by construction.

    Parameters
    ----------
    alpha0, width : array-like of shape (n_checkpoints,)
        alpha0 and spectrum width per checkpoint (averaged over samples), in
        training order.
    reference : int
        Position of t0 in the arrays (default 0: the first checkpoint, normally
        the initialisation, step 0).

    Returns
    -------
    ndarray of shape (n_checkpoints,)
        NaN where alpha0 or width is NaN (e.g. every sample filtered out).

    Raises
    ------
    MultifractalError
        Different lengths, a non-positive reference width (a monofractal at t0
        has no emergence scale) or a non-positive alpha0 (the logarithm is undefined).

    Examples
    --------
    >>> from llmfmri.multifractal import degree_of_emergence
    >>> degree_of_emergence([1.68, 1.55, 1.45], [0.20, 0.30, 0.40]).round(3)
    array([0.   , 0.121, 0.294])
    """
    a = np.asarray(alpha0, dtype=np.float64).ravel()
    w = np.asarray(width, dtype=np.float64).ravel()
    if a.shape != w.shape:
        raise MultifractalError(
            f"alpha0 and width must have the same length, but have shapes {a.shape} and {w.shape}."
        )
    if a.size == 0:
        raise MultifractalError("alpha0 and width are empty: no checkpoint to compare.")
    if not -a.size <= int(reference) < a.size:
        raise MultifractalError(
            f"reference must index a checkpoint (0..{a.size - 1}), but got {reference!r}.")
    a0, w0 = a[reference], w[reference]
    if not (np.isfinite(w0) and w0 > 0):
        raise MultifractalError(
            f"The reference spectrum width w(t0) must be positive, but is {w0!r}: E(t) divides by "
            "it. A zero width means a monofractal reference network (every node scales alike)."
        )
    bad = np.isfinite(a) & (a <= 0)
    if not (np.isfinite(a0) and a0 > 0) or bad.any():
        raise MultifractalError(
            f"alpha0 must be positive for ln(alpha0(t0) / alpha0(t)), but got {a.tolist()}."
        )
    return (w / w0) * np.log(a0 / a)
