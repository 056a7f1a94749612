"""Vectorised, chunked mass-univariate GLM (OLS and AR(1)) on any (n_frames, n_units) array.

How it works
------------
The design ``X`` (n_frames, p) is small; the data ``Y`` (n_frames, n_units)
may be on disk. ``Y`` is read once, in column blocks (aligned with the
array's chunks; 8,192 units of an in-memory array, read in place), tile by
tile, and every fit is computed from per-unit sufficient statistics that one
compiled pass per tile accumulates (centred, squared and summed, multiplied
by the basis: :mod:`llmfmri.glm._kernels`), so peak memory stays near one
tile plus the (p, n_units) results.

With ``X = QR`` (thin QR), OLS needs ``Z = Q'Y`` and ``sum_t y_t^2``:
``beta = R^-1 Z``, ``RSS = |y|^2 - |Z|^2``. Data are centred per unit (by the
mean of the first tile) when the design contains the constant, so these sums
keep their precision; the shift goes back into the coefficients.

AR(1): the OLS residuals' lag-1 Yule-Walker coefficient per unit,
``rho = [sum_t e_t e_{t+1} / (n - 1)] / [sum_t e_t^2 / n]`` (residuals
demeaned; nilearn's estimator), follows exactly from ``Z``, the lagged
products ``Q_sym'Y`` (``Q_sym[t] = Q[t+1] + Q[t-1]``) and ``sum_t y_t y_{t+1}``.
Each unit is then refitted by least squares on prewhitened data
``y_t - rho y_{t-1}`` with its own ``rho`` (exact, the default) or with ``rho``
truncated to a grid of ``1 / bins`` as nilearn does (``bins=100``). The
whitened normal equations are quadratic in ``rho``,
``G(rho) = A11 - rho S + rho^2 A00 + w0^2 x0 x0'``, built from p x p matrices
and solved by a Cholesky factorisation per unit (compiled); they need no
second pass. ``Q_sym = 2 Q + D`` (second differences), and only the part of
``D`` outside the span of ``Q`` needs extra rows in the data product
(see ``_lag_basis``).

The first frame has no predecessor; ``first_frame`` says what to do with it:
``"keep"`` leaves it unchanged (nilearn's ARModel), ``"scale"`` multiplies it by
``sqrt(1 - rho^2)`` (Prais-Winsten, the exact GLS of a stationary AR(1), as
statsmodels ``GLS`` with an AR(1) covariance), ``"drop"`` removes it (statsmodels
``GLSAR``, one degree of freedom fewer).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import numpy as np
from scipy.linalg import solve_triangular

from ..exceptions import ConstantUnitWarning, DataError, PerfectFitWarning
from .._utils import check_option, logger, use_log_level, warn
from ..design import check_design_matrix
from ._contrast import Contrast, contrast_matrix
from ._data import as_2d, chunk_shape, column_block
from ._stats import ratio_stat, t_sf, z_from_t

__all__ = ["run_glm", "GLMResults"]

_NOISE_MODELS = ("ols", "ar1")
_FIRST_FRAME = ("keep", "scale", "drop")
_TILE_BYTES = 64 * 2 ** 20     # one tile read from the array
_BLOCK_UNITS = 8192            # units per task for arrays without chunks
_NONE = np.zeros(0)            # "no such statistic" for the compiled kernels
_EPS = np.finfo(np.float64).eps
#: units whose residual sum of squares (from the sufficient statistics) is below this
#: fraction of their sum of squares are refitted directly from their data: the
#: statistics' rounding (~1e-16 relative) cannot tell an exact fit from a tiny residual
_REFIT_RTOL = 1e-8
#: AR(1) needs a lag-1 pair of residuals besides the fit: at least this many frames
_AR1_MIN_FRAMES = 3


# --------------------------------------------------------------------------- tiles
def _tiles(Y, n_frames, n_units, chunk_size, workers=1):
    """Tile layout: (columns per block, rows per read).

    A block (all frames of ``width`` units) is one task; it is read ``height``
    rows at a time (the array's row chunks, grown up to ``_TILE_BYTES``; an
    in-memory array is not copied, so all frames at once) and each tile is
    added to the block's statistics by one compiled pass
    (:func:`llmfmri.glm._kernels.accumulate`). Without chunks, blocks have
    ``_BLOCK_UNITS`` units, fewer where that gives each of ``workers``
    threads a block.
    """
    row_chunk, unit_chunk = chunk_shape(Y)
    if chunk_size is not None:
        width = column_block(Y, n_frames, n_units, chunk_size)
    elif unit_chunk:
        width = unit_chunk
    else:
        share = -(-n_units // max(1, workers))
        width = min(_BLOCK_UNITS, max(256, -(-share // 256) * 256))
    width = max(1, min(width, n_units))
    if isinstance(Y, np.ndarray):
        height = n_frames
    elif row_chunk:
        height = row_chunk
        while height * 2 * width * 8 <= _TILE_BYTES and height * 2 <= n_frames:
            height *= 2
    else:
        height = 256
    height = max(1, min(height, n_frames))
    return width, height


_CONTROLLER = None


@contextlib.contextmanager
def _blas_single_thread():
    """Run BLAS single-threaded.

    The matrix products here are small and in cache, where BLAS threads only add
    synchronisation (badly so on a loaded machine); parallelism comes from
    ``n_jobs`` threads over column blocks instead.
    """
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    if _CONTROLLER is None:  # scanning the loaded libraries takes ~10 ms: do it once
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


def _workers(n_jobs):
    return (os.cpu_count() or 1) if n_jobs == -1 else max(1, int(n_jobs or 1))


@contextlib.contextmanager
def _executor(n_jobs):
    if n_jobs is None or n_jobs == 1:
        yield None
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=_workers(n_jobs)) as pool:
        yield pool


def _check_n_jobs(n_jobs):
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or int(n_jobs) != n_jobs or (n_jobs < 1 and n_jobs != -1):
        raise ValueError(f"n_jobs must be a positive integer or -1, but got {n_jobs!r}.")
    return int(n_jobs)


def _as_float_c(tile):
    """A C-contiguous float32/float64 array of ``tile`` (a copy only where needed)."""
    tile = np.asarray(tile)
    if tile.dtype not in (np.float32, np.float64):
        tile = tile.astype(np.float64)
    return np.ascontiguousarray(tile)


def _raise_nonfinite(Y, columns):
    """Locate NaN/inf values in ``columns`` of Y and raise a DataError naming them."""
    columns = np.asarray(columns)
    lo, hi = int(columns.min()), int(columns.max()) + 1
    sub = np.asarray(Y[:, lo:hi], dtype=np.float64)[:, columns - lo]
    bad = ~np.isfinite(sub)
    frames = np.flatnonzero(bad.any(axis=1))
    units = columns[bad.any(axis=0)]
    raise DataError(
        f"Y has NaN or infinite values in {units.size} units (first columns "
        f"{units[:5].tolist()}) at frames {frames[:5].tolist()}"
        f"{' ...' if frames.size > 5 else ''}. Drop those frames (and the matching design "
        "rows) or those units before fitting."
    )


# --------------------------------------------------------------------------- model
class _Design:
    """Everything about X that the fits reuse."""

    def __init__(self, X, noise_model, first_frame, bias_correction=False):
        self.X = X
        n, p = X.shape
        self.n, self.p = n, p
        self.noise_model = noise_model
        self.first_frame = first_frame
        self.XtX = X.T @ X
        Q, R = np.linalg.qr(X)
        self.Q, self.R = Q, R
        self.RT = np.ascontiguousarray(R.T)
        Rinv = solve_triangular(R, np.eye(p), lower=False)
        self.Rinv = Rinv
        self.XtX_inv = Rinv @ Rinv.T
        # condition number of the column-normalised design: the rounding of a residual
        # computed by least squares is ~ eps * (1 + 2 kappa) * |y| (Golub & Van Loan 5.3)
        norms = np.sqrt((X * X).sum(axis=0))
        sv = np.linalg.svd(X / np.where(norms > 0, norms, 1.0), compute_uv=False)
        self.kappa = float(sv[0] / sv[-1]) if sv[-1] > 0 else np.inf
        ones_coef = Rinv @ Q.sum(axis=0)
        # the constant lies in the column space: data may be centred per unit first
        self.has_constant = bool(np.allclose(X @ ones_coef, 1.0, atol=1e-8))
        snapped = np.round(ones_coef)
        self.ones_coef = np.where(np.abs(ones_coef - snapped) < 1e-10, snapped, ones_coef)
        self.Qsum = Q.sum(axis=0)
        self.zs_map = None
        if noise_model == "ols":
            basis = Q                                                     # (n, p)
        else:
            Qsym = np.zeros_like(Q)
            Qsym[:-1] += Q[1:]
            Qsym[1:] += Q[:-1]
            basis, self.zs_map = _lag_basis(Q, Qsym)
            self.L = Q[:-1].T @ Q[1:]
            self.Q0, self.Ql = Q[0].copy(), Q[-1].copy()
            x0, xl = X[0], X[-1]
            self.x0, self.xl = x0.copy(), xl.copy()
            self.x0x0 = np.outer(x0, x0)
            self.A11 = self.XtX - self.x0x0
            self.A00 = self.XtX - np.outer(xl, xl)
            cross = X[1:].T @ X[:-1]
            self.S = cross + cross.T
            # gram(rho) = A11 - rho S + rho^2 A00 + w0^2 x0 x0' (see solve_ar1)
            self.gcoef = np.stack([self.A11, -self.S, self.A00, self.x0x0])    # (4, p, p)
            self.rho_map = _rho_bias_map(Q, self.L) if bias_correction else None
        self.k = basis.shape[1]
        self.Qstack = np.ascontiguousarray(basis.T)                       # (k, n)
        if noise_model == "ols" or first_frame != "drop":
            self.dof = float(n - p)
        else:
            self.dof = float(n - 1 - p)
        if self.dof <= 0:
            raise DataError(
                f"The fit has no residual degrees of freedom: {n} frames for {p} regressors"
                f"{' (one frame dropped by first_frame=drop)' if first_frame == 'drop' else ''}."
            )

    def w0sq(self, rho):
        if self.first_frame == "keep":
            return np.ones_like(rho)
        if self.first_frame == "drop":
            return np.zeros_like(rho)
        return 1.0 - rho * rho

    def gram(self, rho):
        """Whitened X'X per unit: array of shape (n_units, p, p)."""
        rho = np.asarray(rho, dtype=np.float64)
        return (self.A11[None] - rho[:, None, None] * self.S[None]
                + (rho * rho)[:, None, None] * self.A00[None]
                + self.w0sq(rho)[:, None, None] * self.x0x0[None])


def _lag_basis(Q, Qsym):
    """Rows to multiply the data by for AR(1): ``Q`` plus what ``Qsym`` adds to its span.

    ``Qsym = 2 Q + D`` with ``D`` the second difference of ``Q``. With its first
    and last rows set apart (they only multiply ``y_0`` and ``y_{n-1}``, which
    are kept anyway), ``D = Q A + E`` with ``E`` outside the span of ``Q``.
    ``E`` often has low rank (drift polynomials and the constant have second
    differences inside the span; boxcars add one spike train each), so
    ``Qsym'Y = (2 I + A') Q'Y + V s U'Y + d_0 y_0 + d_{n-1} y_{n-1}`` needs
    only ``rank(E)`` extra rows in the product instead of ``p``. Singular
    values below 1e-11 are dropped (``Q`` is orthonormal, so ``D`` is of order
    one): an error of that relative size.

    Returns
    -------
    basis : (n, k) array, the rows (as columns) for the data product
    zs_map : None (``basis = [Q, Qsym]``) or ``(Bz, Bw, d0, dl)`` with
        ``Qsym'Y = Bz Q'Y + Bw U'Y + outer(d0, y_0) + outer(dl, y_{n-1})``
    """
    n, p = Q.shape
    if n < 4:
        return np.hstack([Q, Qsym]), None
    D = Qsym - 2.0 * Q
    # boundary rows replaced by linear extrapolation (exact for the second differences
    # of polynomials up to cubic, so drifts stay inside the span); the differences go
    # with y_0 and y_{n-1}
    c0, cl = 2.0 * D[1] - D[2], 2.0 * D[-2] - D[-3]
    d0, dl = D[0] - c0, D[-1] - cl
    D[0] = c0
    D[-1] = cl
    A = Q.T @ D
    E = D - Q @ A
    A2 = Q.T @ E            # re-orthogonalise: E is small where D is nearly in the span
    A += A2
    E -= Q @ A2
    U, s, Vt = np.linalg.svd(E, full_matrices=False)
    r = int(np.sum(s > 1e-11 * max(1.0, s[0] if s.size else 0.0)))
    if r >= p:
        return np.hstack([Q, Qsym]), None
    Bz = 2.0 * np.eye(p) + A.T
    Bw = Vt[:r].T * s[:r]
    return np.hstack([Q, U[:, :r]]), (Bz, Bw, d0, dl)


def _rho_bias_map(Q, L, grid=None):
    """Expected Yule-Walker estimate of OLS residuals as a function of the true AR(1) rho.

    For residuals ``e = R y`` (``R = I - QQ'``) of AR(1) noise with covariance
    ``V(rho)``, ``E[sum e_t^2] = tr(RV)`` and ``E[sum e_t e_{t+1}] = tr(S R V R)``
    (``S`` the lag-1 shift). Their ratio (times ``n / (n - 1)``) is the expected
    estimate ``g(rho)``; inverting ``g`` corrects the downward bias that the
    residual-forming matrix puts on the estimate (as fmristat's bias correction
    does). With ``V = sum_k rho^|k| S^k / (1 - rho^2)`` every trace is a power
    series in ``rho`` whose coefficients are lagged cross-products of the
    columns of ``Q`` (all lags at once by FFT), so all grid points cost one
    small matrix product.

    Returns
    -------
    grid, expected : ndarrays, ``expected`` increasing
    """
    from scipy.fft import irfft, next_fast_len, rfft
    from scipy.interpolate import PchipInterpolator

    if grid is None:
        grid = np.linspace(-0.95, 0.99, 61)
    n, p = Q.shape
    SQ = np.zeros_like(Q)           # (S Q)_t = Q_{t+1}
    SQ[:-1] = Q[1:]
    TQ = np.zeros_like(Q)           # (S' Q)_t = Q_{t-1}
    TQ[1:] = Q[:-1]
    nfft = next_fast_len(2 * n - 1, real=True)

    def folded(c):
        """c[k] + c[-k] for lags k = 1 .. n-1 (c[0] at k = 0), from a circular correlation."""
        out = c[:n].copy()
        out[1:] += c[nfft - 1:nfft - n:-1]
        return out

    FQ = rfft(Q, nfft, axis=0)
    cFQ = FQ.conj()
    # C[k] = sum_t Q_t Q_{t+k}' (p x p), c_qs[k] = sum_t Q_t . (SQ)_{t+k}, c_tq likewise
    C = folded(irfft(cFQ[:, :, None] * FQ[:, None, :], nfft, axis=0)).reshape(n, p * p)
    c_qs = folded(irfft(np.einsum("fi,fi->f", cFQ, rfft(SQ, nfft, axis=0)), nfft))
    c_tq = folded(irfft(np.einsum("fi,fi->f", rfft(TQ, nfft, axis=0).conj(), FQ), nfft))
    powers = np.exp(np.arange(n)[None, :] * np.log(np.abs(grid))[:, None])  # grid ** k
    powers[grid < 0, 1::2] *= -1.0
    scale = 1.0 / (1.0 - grid * grid)
    W = (scale[:, None] * (powers @ C)).reshape(grid.size, p, p)            # Q'VQ
    tr_rv = n * scale - np.einsum("gii->g", W)
    tr_srvr = ((n - 1) * grid * scale - scale * (powers @ (c_qs + c_tq))
               + np.einsum("ij,gji->g", L, W))
    out = (tr_srvr / (n - 1)) / (tr_rv / n)
    keep = np.concatenate([[True], np.diff(out) > 0])  # guard monotonicity
    grid, out = grid[keep], out[keep]
    # monotone cubic interpolation onto a fine grid: |error| < 1e-4 in rho for n >= 200
    fine = np.linspace(grid[0], grid[-1], 2001)
    return fine, PchipInterpolator(grid, out)(fine)


class _Stats:
    """Per-unit sufficient statistics of one column block, accumulated over row tiles.

    ``M`` is ``B' Y_c`` (``B`` the basis rows, ``Q`` first), ``yy`` the sum of
    squares and ``y1`` the lag-1 cross-product of the centred data ``Y_c``
    (see :func:`llmfmri.glm._kernels.accumulate`).
    """

    def __init__(self, d, width):
        self.M = np.zeros((d.Qstack.shape[0], width))
        self.yy = np.zeros(width)
        self.y1 = np.zeros(width) if d.noise_model == "ar1" else _NONE
        self.ysum = None if d.has_constant else np.zeros(width)
        self.y0 = np.zeros(width)
        self.prev = np.zeros(width)
        self.shift = np.zeros(width)

    def add(self, d, Y, r0, r1, c0, c1, frame):
        """Add rows ``r0:r1`` of columns ``c0:c1`` of ``Y`` (frames ``frame`` onwards)."""
        from ._kernels import accumulate

        if frame == 0:
            self.y0[...] = Y[r0, c0:c1] - self.shift
        accumulate(Y, r0, r1, c0, c1, frame, self.shift, d.Qstack, self.M, self.yy, self.y1,
                   _NONE if self.ysum is None else self.ysum, self.prev)


_FIRST_FRAME_CODE = {"keep": 0, "scale": 1, "drop": 2}


def _finish_ar1(d, st, Z, Zs, bins, rho_given):
    """AR(1) coefficients, whitened residual sum of squares and rho of a block's units.

    One compiled loop over units (:func:`llmfmri.glm._kernels.finish_ar1`):
    the lag-1 Yule-Walker coefficient of the demeaned OLS residuals from the
    sufficient statistics (unless ``rho_given``), the bias correction and
    ``bins``, then the whitened normal equations by Cholesky. Units whose
    whitened ``X'X`` is not numerically positive definite are solved by LU.
    """
    from ._kernels import finish_ar1

    w = Z.shape[1]
    theta = np.zeros((w, d.p))    # unit-major inside the kernel
    h = np.empty((w, d.p))
    rss = np.zeros(w)
    rho = np.empty(w)
    grid, expected = d.rho_map if d.rho_map is not None else (_NONE, _NONE)
    given = _NONE if rho_given is None else np.ascontiguousarray(rho_given, dtype=np.float64)
    ok = finish_ar1(np.ascontiguousarray(Z.T), np.ascontiguousarray(Zs.T), st.yy, st.y1, st.y0,
                    st.prev, _NONE if st.ysum is None else st.ysum, float(d.n), d.L, d.Qsum,
                    d.Q0, d.Ql, d.RT, d.x0, d.xl, d.gcoef, given, rho_given is None, grid,
                    expected, int(bins or 0), _FIRST_FRAME_CODE[d.first_frame], theta, h, rss,
                    rho)
    theta, h = theta.T, h.T
    if not ok.all():
        bad = np.flatnonzero(~ok)
        r = rho[bad]
        hb = h[:, bad]
        theta[:, bad] = np.linalg.solve(d.gram(r), hb.T[..., None])[..., 0].T
        y0, yl, yy = st.y0[bad], st.prev[bad], st.yy[bad]
        w0sq = d.w0sq(r)
        yw = (yy - y0 * y0) - 2.0 * r * st.y1[bad] + r * r * (yy - yl * yl) + w0sq * y0 * y0
        rss[bad] = yw - np.einsum("ij,ij->j", theta[:, bad], hb)
    return theta, rss, rho


def _finish(st, d, bins, rho_given):
    """Coefficients, residual sum of squares and rho of every unit of a block."""
    p = d.p
    M = st.M
    Z = M[:p]
    yy = st.yy
    if d.noise_model == "ols":
        theta = solve_triangular(d.R, Z, lower=False, check_finite=False)
        rss = yy - np.einsum("ij,ij->j", Z, Z)
        rho = None
    else:
        y0, yl = st.y0, st.prev
        if d.zs_map is None:
            Zs = M[p:d.k]
        else:
            Bz, Bw, d0, dl = d.zs_map
            Zs = Bz @ Z + Bw @ M[p:d.k] + np.outer(d0, y0) + np.outer(dl, yl)
        theta, rss, rho = _finish_ar1(d, st, Z, Zs, bins, rho_given)
    rss = np.maximum(rss, 0.0)
    if d.has_constant:
        theta = theta + np.outer(d.ones_coef, st.shift)
    return theta, rss, rho


# --------------------------------------------------------------------------- results
class GLMResults:
    """A fitted mass-univariate GLM: one regression per unit, same design.

    Attributes
    ----------
    design_matrix : pandas.DataFrame of shape (n_frames, n_regressors)
    columns : list of str
    noise_model : {"ols", "ar1"}
    theta : ndarray of shape (n_regressors, n_units)
        Regression coefficients (``effect`` is an alias).
    dispersion : ndarray of shape (n_units,)
        Residual variance ``sigma^2`` (of the whitened residuals for AR(1)).
    rho : ndarray of shape (n_units,) or None
        AR(1) coefficient used for each unit (binned if ``bins`` was given).
    dof : float
        Residual degrees of freedom, ``n_frames - n_regressors`` (one fewer with
        ``first_frame="drop"``).
    constant_units : ndarray of bool, shape (n_units,)
        Units constant over all frames (no variance at all): dispersion 0;
        every contrast orthogonal to the constant has effect 0 and t = z = 0.
    perfect_fit : ndarray of bool, shape (n_units,)
        Units that are not constant but that the design fits exactly (zero
        residual variance, to rounding): dispersion 0; a non-zero effect is
        exact, with ``t = +-inf``, ``p = 0`` and the largest finite z, and an
        effect that is rounding noise of the fit is set to exactly 0.
    """

    def __init__(self, design_matrix, design, theta, dispersion, rho, constant_units, *,
                 bins=None, first_frame="keep", bias_correction=False, perfect_fit=None,
                 exact_scale=None):
        self.design_matrix = design_matrix
        self.columns = [str(c) for c in design_matrix.columns]
        self._design = design
        self.noise_model = design.noise_model
        self.theta = theta
        self.dispersion = dispersion
        self.rho = rho
        self.constant_units = constant_units
        n = theta.shape[1]
        self.perfect_fit = (np.zeros(n, dtype=bool) if perfect_fit is None
                            else np.asarray(perfect_fit, dtype=bool))
        # per unit: max |y| of units fitted exactly (constant or perfect), else 0
        self._exact_scale = np.zeros(n) if exact_scale is None else np.asarray(exact_scale)
        self.dof = design.dof
        self.bins = bins
        self.first_frame = first_frame
        self.bias_correction = bias_correction

    def _snap(self, effect, C):
        """Set effects of exactly fitted units that are rounding noise of the fit to 0.

        ``effect = C theta`` of shape (q, n_units). For a unit fitted exactly the
        coefficients are known to rounding, ``|delta(c theta)| <~ n^1.5 eps
        max|y| |c R^-1|`` (the rounding of ``Q'y``, mapped through ``R^-1``);
        effects below 64 times that are zero to the precision of the fit, so a
        condition an exact fit does not depend on gets t = 0, not +-inf.
        """
        units = np.flatnonzero(self._exact_scale > 0)
        if units.size == 0:
            return effect
        n = self._design.n
        gain = np.linalg.norm(np.atleast_2d(C) @ self._design.Rinv, axis=1)       # (q,)
        tol = 64.0 * _EPS * n ** 1.5 * gain[:, None] * self._exact_scale[units][None, :]
        effect = np.array(effect, dtype=np.float64, copy=True)
        sub = effect[:, units]
        sub[np.abs(sub) <= tol] = 0.0
        effect[:, units] = sub
        return effect

    def __repr__(self):
        return (f"GLMResults(noise_model={self.noise_model!r}, n_frames={self.n_frames}, "
                f"n_units={self.n_units}, columns={self.columns})")

    @property
    def n_frames(self):
        """Number of frames."""
        return self._design.n

    @property
    def n_units(self):
        """Number of units."""
        return self.theta.shape[1]

    @property
    def effect(self):
        """Regression coefficients, array of shape (n_regressors, n_units)."""
        return self.theta

    def vcov(self, matrix=None, *, units=None, dispersion=True):
        """Covariance of ``matrix @ theta`` per unit.

        Parameters
        ----------
        matrix : array of shape (q, p), optional
            Contrast matrix; the identity (all coefficients) by default.
        units : array of int or slice, optional
            Units to compute (all by default).
        dispersion : bool
            Multiply by the residual variance (``False``: the unscaled ``C G^-1 C'``).

        Returns
        -------
        ndarray of shape (q, q, n_units)
        """
        C = np.eye(len(self.columns)) if matrix is None else np.atleast_2d(matrix)
        sel = slice(None) if units is None else units
        disp = self.dispersion[sel]
        n = disp.shape[0]
        q = C.shape[0]
        if self.rho is None:
            base = C @ self._design.XtX_inv @ C.T
            out = np.broadcast_to(base[..., None], (q, q, n)).copy()
        else:
            rho = self.rho[sel]
            out = np.empty((q, q, n))
            step = 16384
            for a in range(0, n, step):
                G = self._design.gram(rho[a:a + step])
                sol = np.linalg.solve(G, np.broadcast_to(C.T, (G.shape[0],) + C.T.shape))
                out[:, :, a:a + step] = np.moveaxis(C @ sol, 0, -1)
        if dispersion:
            out *= disp
        return out

    def contrast(self, contrast_def, stat_type=None):
        """Compute a contrast (see :func:`compute_contrast`)."""
        C, stat_type, name = contrast_matrix(contrast_def, self.columns, stat_type)
        effect = self._snap(C @ self.theta, C)
        var = self.vcov(C)
        if stat_type == "t":
            return Contrast(effect[0], var[0, 0], self.dof, "t", name=name)
        return Contrast(effect, var, self.dof, "F", name=name)

    # per-regressor summaries, like statsmodels' params / bse / tvalues / pvalues
    @property
    def variance(self):
        """Variance of each coefficient, array of shape (n_regressors, n_units)."""
        return np.einsum("iiu->iu", self.vcov())

    @property
    def t(self):
        """t statistic of each coefficient, (n_regressors, n_units).

        Where the variance is 0: 0 for a zero coefficient, ``+-inf`` for a
        non-zero one (an exact fit; see :func:`llmfmri.glm._stats.ratio_stat`).
        """
        theta = self._snap(self.theta, np.eye(len(self.columns)))
        return ratio_stat(theta, self.variance)

    @property
    def z(self):
        """z score of each coefficient (same one-sided p as t; finite), (n_regressors, n_units)."""
        return z_from_t(self.t, self.dof) + 0.0

    @property
    def p(self):
        """Two-sided p value of each coefficient (as statsmodels' ``pvalues``).

        1 where the coefficient and its variance are both 0, 0 for an exact
        non-zero coefficient.
        """
        t = self.t
        p = np.minimum(2.0 * t_sf(np.abs(t), self.dof), 1.0)
        return np.where((self.variance == 0) & (t == 0), 1.0, p)


# --------------------------------------------------------------------------- run_glm
def run_glm(Y, X, *, noise_model="ols", bins=None, first_frame="keep", rho=None,
            bias_correction=True, chunk_size=None, n_jobs=1, verbose=0):
    """Fit a GLM to every unit (column) of ``Y``: vectorised and chunked.

    Parameters
    ----------
    Y : array-like of shape (n_frames, n_units)
        numpy array, zarr array, dask array or anything sliceable as
        ``Y[:, a:b]`` that ``np.asarray`` turns into an array. Read in column
        blocks (aligned with the array's chunks), so an on-disk array larger
        than memory works; float32 data are fitted in float64.
    X : pandas.DataFrame or array of shape (n_frames, n_regressors)
        Design matrix (see :func:`llmfmri.make_design_matrix`). It must be
        of full column rank; a rank deficient design raises an error naming
        the collinear columns.
    noise_model : {"ols", "ar1"}, default="ols"
        ``"ar1"``: AR(1) prewhitening with a per-unit Yule-Walker coefficient.
    bins : int or None, default=None
        ``None``: each unit is whitened with its own coefficient (exact).
        An int: coefficients truncated to multiples of ``1 / bins``, as
        nilearn's ``run_glm`` (``bins=100``) does (with
        ``bias_correction=False``: nilearn's numbers).
    first_frame : {"keep", "scale", "drop"}, default="keep"
        AR(1) treatment of the first frame: unchanged (nilearn), scaled by
        ``sqrt(1 - rho^2)`` (Prais-Winsten / statsmodels GLS) or dropped
        (statsmodels GLSAR).
    rho : array of shape (n_units,), optional
        Fixed AR(1) coefficients (skip their estimation).
    bias_correction : bool, default=True
        Correct the AR(1) coefficients for the downward bias of the
        Yule-Walker estimate on OLS residuals (the design removes part of
        the autocorrelation), by inverting its expected value under an
        AR(1) model for this design. Keeps false positive rates near nominal
        for short runs (see ``docs/glm.md``). ``False`` gives nilearn's
        estimator; ``bias_correction=False, bins=100`` gives nilearn's numbers.
    chunk_size : int, optional
        Units per tile. ``Y`` is read once in tiles of (row chunk, units): by
        default the array's own chunks (zarr, dask; rows grown up to 64 MiB
        tiles, 256 frames without chunks) or 8,192 units of an in-memory
        array (not copied), so peak memory is about one tile plus the
        (n_regressors, n_units) results.
    n_jobs : int, default=1
        Threads over column blocks, handed out one at a time (``-1``: all
        cores); an in-memory array is split into at least one block per
        thread. The compiled kernels release the GIL; BLAS runs
        single-threaded inside each thread.
    verbose : int, default=0
        Log progress for this call: 2 (DEBUG) logs one line per block of units.

    Returns
    -------
    GLMResults

    Warns
    -----
    ConstantUnitWarning
        When some units are constant over all frames (no variance at all).
        Their coefficients are the constant's exact least-squares fit
        (``c * pinv(X) @ 1``, with rounding noise below 1e-10 set to 0, so
        condition effects are 0), their dispersion is 0, and every contrast
        orthogonal to the constant has t = z = 0 (p = 1 two-sided), with no NaN.
    PerfectFitWarning
        When some units that are not constant are fitted exactly by the
        design (zero residual variance, e.g. pooled frames of repeated tokens
        that follow the conditions). This is the strongest effect, not none:
        a non-zero effect gets ``t = +-inf``, ``p = 0`` and the largest finite
        z the transform gives; an effect that is rounding noise of the fit is
        set to 0 (t = z = 0). Units whose residual is below ``1e-8`` of their
        sum of squares are refitted directly from their data, so that an exact
        fit (residual at rounding level, ``|e| <= 64 eps (1 + 2 kappa(X)) |y|``)
        is told from a tiny real residual.

    Raises
    ------
    DataError
        For NaN/inf values (naming units and frames), mismatched lengths, no
        residual degrees of freedom, or ``noise_model="ar1"`` with fewer than
        3 frames.
    llmfmri.design.DesignMatrixError
        For a rank deficient or non-finite design.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from llmfmri.glm import run_glm
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"task": np.tile([0.0] * 10 + [1.0] * 10, 5), "constant": 1.0})
    >>> Y = rng.standard_normal((100, 3)); Y[:, 0] += 2 * X["task"].to_numpy()
    >>> res = run_glm(Y, X)
    >>> bool(res.contrast("task").z_score()[0] > 5)
    True
    """
    check_option("noise_model", noise_model, _NOISE_MODELS)
    check_option("first_frame", first_frame, _FIRST_FRAME)
    if bins is not None and (isinstance(bins, bool) or int(bins) != bins or bins <= 0):
        raise ValueError(f"bins must be None or a positive integer, but got {bins!r}.")
    n_jobs = _check_n_jobs(n_jobs)
    with use_log_level(verbose), _blas_single_thread():
        return _run_glm(Y, X, noise_model, bins, first_frame, rho, bias_correction, chunk_size,
                        n_jobs, verbose)


def _run_glm(Y, X, noise_model, bins, first_frame, rho, bias_correction, chunk_size, n_jobs,
             verbose):
    Y, (n_frames, n_units) = as_2d(Y)
    X_shape = np.shape(X)
    if len(X_shape) >= 1 and X_shape[0] != n_frames:
        raise DataError(
            f"X and Y must have the same number of frames (rows), but X has shape {X_shape} "
            f"and Y has shape {(n_frames, n_units)}."
        )
    Xdf = check_design_matrix(X, name="X", n_frames=n_frames)
    if n_units == 0:
        raise DataError("Y has no units (shape (n_frames, 0)); nothing to fit.")
    if noise_model == "ar1" and n_frames < _AR1_MIN_FRAMES:
        raise DataError(
            f"noise_model='ar1' needs at least {_AR1_MIN_FRAMES} frames (the AR(1) coefficient "
            f"is estimated from lag-1 pairs of residuals), but Y has {n_frames}; use "
            "noise_model='ols', or more frames."
        )
    Xa = np.ascontiguousarray(Xdf.to_numpy(dtype=np.float64))
    d = _Design(Xa, noise_model, first_frame, bias_correction and rho is None)
    if rho is not None:
        if noise_model != "ar1":
            raise ValueError("rho is only used with noise_model='ar1'.")
        rho = np.broadcast_to(np.asarray(rho, dtype=np.float64), (n_units,))
        if not np.isfinite(rho).all():
            raise ValueError("rho must be finite.")

    theta = np.empty((d.p, n_units))
    rss = np.empty(n_units)
    ss = np.empty(n_units)
    rho_out = np.empty(n_units) if noise_model == "ar1" else None
    width, height = _tiles(Y, n_frames, n_units, chunk_size, _workers(n_jobs))
    # an in-memory float array is read in place (rows are contiguous); anything else is
    # read tile by tile into a C-contiguous float copy
    direct = (isinstance(Y, np.ndarray) and Y.flags.c_contiguous
              and Y.dtype in (np.float32, np.float64))
    n_shift = min(n_frames, 64)  # frames whose mean centres the data
    t0 = time.perf_counter()
    done = [0]
    lock = threading.Lock()

    def fit_block(c0):
        """One task: all frames of units c0:c1, read tile by tile, then solved."""
        c1 = min(c0 + width, n_units)
        st = _Stats(d, c1 - c0)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite data raise below
            for r0 in range(0, n_frames, height):
                r1 = min(r0 + height, n_frames)
                if direct:
                    tile, a, b, lo, hi = Y, r0, r1, c0, c1
                else:
                    tile = _as_float_c(Y[r0:r1, c0:c1])
                    a, b, lo, hi = 0, r1 - r0, 0, c1 - c0
                if r0 == 0 and d.has_constant:
                    st.shift[...] = tile[a:a + n_shift, lo:hi].mean(axis=0, dtype=np.float64)
                st.add(d, tile, a, b, lo, hi, r0)
            th, r, rh = _finish(st, d, bins, None if rho is None else rho[c0:c1])
        bad = ~(np.isfinite(r) & np.isfinite(th).all(axis=0))
        if bad.any():
            _raise_nonfinite(Y, c0 + np.flatnonzero(bad))
        theta[:, c0:c1] = th
        rss[c0:c1] = r
        ss[c0:c1] = st.yy
        if rho_out is not None:
            rho_out[c0:c1] = rh
        with lock:
            done[0] += c1 - c0
            logger.debug("run_glm: %d/%d units fitted (%.1f s)", done[0], n_units,
                         time.perf_counter() - t0)

    starts = range(0, n_units, width)
    with _executor(n_jobs) as pool:
        if pool is None or len(starts) == 1:
            for c0 in starts:
                fit_block(c0)
        else:  # blocks are handed out one at a time: a busy core just takes fewer
            list(pool.map(fit_block, starts))
    constant, perfect, scale = _exact_units(Y, d, theta, rss, ss, rho_out, rho, bins)
    n_const, n_perfect = int(constant.sum()), int(perfect.sum())
    if n_const:
        warn(
            f"{n_const} of {n_units} units are constant over all {n_frames} frames (or "
            f"samples; first columns {np.flatnonzero(constant)[:5].tolist()}): no variance at "
            "all. Their effects are 0 for any contrast orthogonal to the constant, their "
            "variance 0, and their t, z set to 0 (p = 1 two-sided); a contrast of the constant "
            "itself (e.g. the intercept across identical samples) is exact: t = +-inf and p = 0 "
            "where the value is not 0.",
            ConstantUnitWarning,
        )
    if n_perfect:
        warn(
            f"{n_perfect} of {n_units} units are fitted exactly by the design (zero residual "
            f"variance; first columns {np.flatnonzero(perfect)[:5].tolist()}): not constant, "
            "but following the regressors without error. A non-zero effect there is exact: "
            "t = +-inf, p = 0 and z the largest finite z; an effect of 0 gets t = z = 0. "
            "Check these units (e.g. pooled frames of repeated tokens) before reading the maps.",
            PerfectFitWarning,
        )
    dispersion = rss / d.dof
    return GLMResults(Xdf, d, theta, dispersion, rho_out, constant, bins=bins,
                      first_frame=first_frame, bias_correction=bool(bias_correction),
                      perfect_fit=perfect, exact_scale=scale)


def _exact_units(Y, d, theta, rss, ss, rho_out, rho_given, bins):
    """Find constant units and exact fits; refit near-exact units from their data.

    Candidates are units whose residual sum of squares is below ``_REFIT_RTOL``
    of their sum of squares (the sufficient statistics cannot resolve less).
    Each is read again: a constant column is fitted by the constant exactly
    (rounding noise of the coefficients removed); any other is refitted by
    least squares from its data (the residual computed directly, refined once),
    which tells an exact fit (residual norm at rounding level,
    ``<= 64 eps (1 + 2 kappa) |y|``) from a tiny real residual, whose sum of
    squares (and AR(1) coefficient and whitened fit) is then exact too.
    ``theta``, ``rss`` and ``rho_out`` are updated in place.

    Returns
    -------
    constant, perfect : ndarray of bool, shape (n_units,)
    scale : ndarray of shape (n_units,)
        ``max |y|`` of constant and exactly fitted units (0 elsewhere): the
        scale of their coefficients' rounding (see ``GLMResults._snap``).
    """
    n_units = theta.shape[1]
    constant = np.zeros(n_units, dtype=bool)
    perfect = np.zeros(n_units, dtype=bool)
    scale = np.zeros(n_units)
    tmax = np.abs(theta).max(axis=0)
    cand = np.flatnonzero((rss <= _REFIT_RTOL * ss) | (rss <= 1e-20 * d.n * tmax * tmax))
    for k in range(0, cand.size, 4096):
        cols = cand[k:k + 4096]
        lo, hi = int(cols.min()), int(cols.max()) + 1
        sub = np.asarray(np.asarray(Y[:, lo:hi])[:, cols - lo], dtype=np.float64)
        same = (sub == sub[0]).all(axis=0)
        idx = cols[same]
        if idx.size:
            first = sub[0, same]
            theta[:, idx] = np.outer(d.ones_coef, first)
            rss[idx] = 0.0
            if rho_out is not None:  # no residuals: no AR(1) to estimate
                rho_out[idx] = 0.0 if rho_given is None else rho_given[idx]
            constant[idx] = True
            scale[idx] = np.abs(first)
        if same.all():
            continue
        rest, ys = cols[~same], sub[:, ~same]
        beta, e = _direct_ols(d, ys)
        enorm = np.sqrt(np.einsum("ij,ij->j", e, e))
        floor = 64.0 * _EPS * (1.0 + 2.0 * d.kappa) * np.sqrt(np.einsum("ij,ij->j", ys, ys))
        exact = enorm <= floor
        if exact.any():
            idx = rest[exact]
            theta[:, idx] = beta[:, exact]
            rss[idx] = 0.0
            if rho_out is not None:  # no residuals: no AR(1) to estimate
                rho_out[idx] = 0.0 if rho_given is None else rho_given[idx]
            perfect[idx] = True
            scale[idx] = np.abs(ys[:, exact]).max(axis=0)
        if (~exact).any():
            idx = rest[~exact]
            if d.noise_model == "ols":
                theta[:, idx] = beta[:, ~exact]
                rss[idx] = enorm[~exact] ** 2
            else:
                for j, u in zip(np.flatnonzero(~exact), idx):
                    r = rho_given[u] if rho_given is not None else _yule_walker(d, e[:, j], bins)
                    theta[:, u], rss[u], rho_out[u] = _ar1_direct(d, ys[:, j], r)
    return constant, perfect, scale


def _direct_ols(d, Y):
    """Least squares of the columns of ``Y`` on ``X`` from the data, refined once.

    Returns the coefficients (p, k) and the residuals (n, k), computed as
    ``y - X beta`` rather than from sums of squares.
    """
    beta = solve_triangular(d.R, d.Q.T @ Y, lower=False, check_finite=False)
    e = Y - d.X @ beta
    beta += solve_triangular(d.R, d.Q.T @ e, lower=False, check_finite=False)
    return beta, Y - d.X @ beta


def _yule_walker(d, e, bins):
    """The AR(1) coefficient of residuals ``e`` as the compiled kernel computes it."""
    n = e.size
    c = e - e.mean()
    r0 = float(c @ c) / n
    r = float(c[1:] @ c[:-1]) / (n - 1) / r0 if r0 > 0 else 0.0
    if d.rho_map is not None:
        grid, expected = d.rho_map
        r = float(np.interp(r, expected, grid))
    if bins:
        r = np.trunc(r * bins) / bins
    return r


def _ar1_direct(d, y, r):
    """AR(1) fit of one unit with coefficient ``r``, whitening its data directly."""
    if d.first_frame == "scale":
        r = min(max(r, -0.999999), 0.999999)
    X = d.X
    yw = np.concatenate([[y[0]], y[1:] - r * y[:-1]])
    Xw = np.vstack([X[:1], X[1:] - r * X[:-1]])
    if d.first_frame == "drop":
        yw, Xw = yw[1:], Xw[1:]
    elif d.first_frame == "scale":
        w0 = np.sqrt(1.0 - r * r)
        yw[0] *= w0
        Xw[0] *= w0
    beta = np.linalg.lstsq(Xw, yw, rcond=None)[0]
    e = yw - Xw @ beta
    return beta, float(e @ e), r
