"""Compiled kernels of the GLM engine (numba).

Two loops carry the cost of a mass-univariate fit, and numpy has no fused
form of either:

* :func:`accumulate` reads the data once and, while each value is in a
  register, centres it, adds it to the per-unit sum of squares, lag-1
  product and sum, and multiplies it into the basis rows. Rows are taken
  four at a time so every accumulator is loaded and stored once per four
  frames, and two basis rows at a time so the arithmetic stays in registers;
  the four rows of a strip of 1,024 units stay in cache while the basis rows
  are applied (the first two in the same loop as the statistics). The
  numpy version of the same work is five separate passes over a cached copy
  of the data (centre, square, multiply, lag, sum).
* :func:`finish_ar1` turns each unit's statistics into its AR(1) fit:
  the Yule-Walker ``rho_u``, the whitened normal equations
  ``G(rho_u) theta_u = h_u`` (p x p, built from four fixed matrices and
  ``rho_u``) solved by a Cholesky factorisation, and the residual sum of
  squares, in one loop over units instead of a dozen numpy passes over
  (p, n_units) temporaries.

Both release the GIL (``n_jobs`` threads run them in parallel) and are
compiled on first use and cached on disk (``cache=True``). Arithmetic is
IEEE double precision; only multiply-adds are fused (``fastmath={"contract"}``),
so NaN and inf propagate and are reported by the caller.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["accumulate", "finish_ar1"]

_JIT = dict(nogil=True, cache=True, fastmath={"contract"})
_STRIP = 1024  # units per strip: 4 rows x 1,024 float64 = 32 KiB stay in L1/L2


@njit(inline="always", **_JIT)
def _centred(ya, yb, yc, yd, s, j):  # pragma: no cover
    """Entry ``j`` of four frames, minus the unit's shift ``s``."""
    return ya[j] - s, yb[j] - s, yc[j] - s, yd[j] - s


@njit(**_JIT)
def accumulate(Y, r0, r1, c0, c1, q0, shift, Qs, M, yy, y1, ysum, prev):  # pragma: no cover
    """Add rows ``r0:r1`` of columns ``c0:c1`` of ``Y`` to per-unit statistics.

    With ``x_t = Y[t, c0:c1] - shift`` (float64):

    * ``yy += sum_t x_t**2``
    * ``y1 += sum_t x_t * x_{t-1}`` (``prev`` holds ``x`` of the frame before
      ``r0``, zeros at the first frame), skipped when ``y1`` is empty
    * ``ysum += sum_t x_t``, skipped when ``ysum`` is empty
    * ``M[k] += sum_t Qs[k, q0 + t - r0] * x_t`` for every basis row ``k``
    * ``prev[:] = x_{r1 - 1}``

    ``Y`` is C-contiguous (float32 or float64); ``Qs`` (K, n_frames),
    ``M`` (K, c1 - c0) and the vectors (c1 - c0,) are float64.
    """
    K = Qs.shape[0]
    w = c1 - c0
    ar1 = y1.shape[0] > 0
    dosum = ysum.shape[0] > 0
    n4 = r0 + ((r1 - r0) // 4) * 4
    for i0 in range(r0, n4, 4):
        f = q0 + i0 - r0
        for j0 in range(0, w, _STRIP):
            nb = min(_STRIP, w - j0)
            cb = c0 + j0
            sh = shift[j0:j0 + nb]
            ya = Y[i0, cb:cb + nb]
            yb = Y[i0 + 1, cb:cb + nb]
            yc = Y[i0 + 2, cb:cb + nb]
            yd = Y[i0 + 3, cb:cb + nb]
            yyb = yy[j0:j0 + nb]
            pb = prev[j0:j0 + nb]
            y1b = y1[j0:j0 + nb]
            k_first = 0
            if K >= 2:  # the statistics, fused with the first two basis rows
                k_first = 2
                pa, pb_, pc, pd = Qs[0, f], Qs[0, f + 1], Qs[0, f + 2], Qs[0, f + 3]
                qa, qb, qc, qd = Qs[1, f], Qs[1, f + 1], Qs[1, f + 2], Qs[1, f + 3]
                m0 = M[0, j0:j0 + nb]
                m1 = M[1, j0:j0 + nb]
                if ar1:
                    for j in range(nb):
                        xa, xb, xc, xd = _centred(ya, yb, yc, yd, sh[j], j)
                        yyb[j] += xa * xa + xb * xb + xc * xc + xd * xd
                        y1b[j] += xa * pb[j] + xb * xa + xc * xb + xd * xc
                        pb[j] = xd
                        m0[j] += pa * xa + pb_ * xb + pc * xc + pd * xd
                        m1[j] += qa * xa + qb * xb + qc * xc + qd * xd
                else:
                    for j in range(nb):
                        xa, xb, xc, xd = _centred(ya, yb, yc, yd, sh[j], j)
                        yyb[j] += xa * xa + xb * xb + xc * xc + xd * xd
                        m0[j] += pa * xa + pb_ * xb + pc * xc + pd * xd
                        m1[j] += qa * xa + qb * xb + qc * xc + qd * xd
            elif ar1:
                for j in range(nb):
                    xa, xb, xc, xd = _centred(ya, yb, yc, yd, sh[j], j)
                    yyb[j] += xa * xa + xb * xb + xc * xc + xd * xd
                    y1b[j] += xa * pb[j] + xb * xa + xc * xb + xd * xc
                    pb[j] = xd
            else:
                for j in range(nb):
                    xa, xb, xc, xd = _centred(ya, yb, yc, yd, sh[j], j)
                    yyb[j] += xa * xa + xb * xb + xc * xc + xd * xd
            if dosum:
                ysb = ysum[j0:j0 + nb]
                for j in range(nb):
                    s = sh[j]
                    ysb[j] += (ya[j] - s) + (yb[j] - s) + (yc[j] - s) + (yd[j] - s)
            for k in range(k_first, K - 1, 2):  # the other basis rows, two at a time
                pa, pb_, pc, pd = Qs[k, f], Qs[k, f + 1], Qs[k, f + 2], Qs[k, f + 3]
                qa, qb, qc, qd = Qs[k + 1, f], Qs[k + 1, f + 1], Qs[k + 1, f + 2], Qs[k + 1, f + 3]
                m0 = M[k, j0:j0 + nb]
                m1 = M[k + 1, j0:j0 + nb]
                for j in range(nb):
                    xa, xb, xc, xd = _centred(ya, yb, yc, yd, sh[j], j)
                    m0[j] += pa * xa + pb_ * xb + pc * xc + pd * xd
                    m1[j] += qa * xa + qb * xb + qc * xc + qd * xd
            if (K - k_first) % 2:
                k = K - 1
                pa, pb_, pc, pd = Qs[k, f], Qs[k, f + 1], Qs[k, f + 2], Qs[k, f + 3]
                m0 = M[k, j0:j0 + nb]
                for j in range(nb):
                    s = sh[j]
                    m0[j] += (pa * (ya[j] - s) + pb_ * (yb[j] - s)
                              + pc * (yc[j] - s) + pd * (yd[j] - s))
    # the last (r1 - r0) % 4 rows, one at a time
    for i in range(n4, r1):
        f = q0 + i - r0
        yr = Y[i, c0:c1]
        for j in range(w):
            x = yr[j] - shift[j]
            yy[j] += x * x
        if ar1:
            for j in range(w):
                x = yr[j] - shift[j]
                y1[j] += x * prev[j]
                prev[j] = x
        if dosum:
            for j in range(w):
                ysum[j] += yr[j] - shift[j]
        for k in range(K):
            qk = Qs[k, f]
            mk = M[k]
            for j in range(w):
                mk[j] += qk * (yr[j] - shift[j])
    if r1 > r0:
        yr = Y[r1 - 1, c0:c1]
        for j in range(w):
            prev[j] = yr[j] - shift[j]


@njit(inline="always", **_JIT)
def _interp(x, xp, fp):  # pragma: no cover
    """``np.interp`` of one value (``xp`` increasing) by bisection."""
    m = xp.shape[0]
    if not x == x:
        return x
    if x <= xp[0]:
        return fp[0]
    if x >= xp[m - 1]:
        return fp[m - 1]
    lo = 0
    hi = m - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xp[mid] <= x:
            lo = mid
        else:
            hi = mid
    t = (x - xp[lo]) / (xp[hi] - xp[lo])
    return fp[lo] + t * (fp[hi] - fp[lo])


@njit(inline="always", **_JIT)
def _gram_solve(gcoef, r, c, h, L, z, out):  # pragma: no cover
    """Cholesky solve of ``G out = h``, ``G = gcoef[0] + r gcoef[1] + r^2 gcoef[2] + c gcoef[3]``.

    Returns False (``out`` untouched) when ``G`` is not numerically positive definite.
    """
    p = h.shape[0]
    r2 = r * r
    for j in range(p):
        s = gcoef[0, j, j] + r * gcoef[1, j, j] + r2 * gcoef[2, j, j] + c * gcoef[3, j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:
            return False
        d = np.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, p):
            g = gcoef[0, i, j] + r * gcoef[1, i, j] + r2 * gcoef[2, i, j] + c * gcoef[3, i, j]
            for k in range(j):
                g -= L[i, k] * L[j, k]
            L[i, j] = g / d
    for i in range(p):
        s = h[i]
        for k in range(i):
            s -= L[i, k] * z[k]
        z[i] = s / L[i, i]
    for i in range(p - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, p):
            s -= L[k, i] * out[k]
        out[i] = s / L[i, i]
    return True


@njit(**_JIT)
def finish_ar1(Z, Zs, yy, y1, y0, yl, ysum, n, L, Qsum, Q0, Ql, RT, x0, xl, gcoef,
               rho_in, estimate, grid, expected, bins, first_frame,
               theta, h, rss, rho):  # pragma: no cover
    """AR(1) fit of every unit of a block from its sufficient statistics.

    Arrays are unit-major: ``Z``, ``Zs``, ``theta``, ``h`` of shape
    (n_units, p). Per unit ``u`` (``z = Z[u]``, rows of ``Q'Y_c`` and
    ``Q_sym'Y_c``):

    1. ``rho``: given (``estimate`` False: ``rho_in``), or the lag-1
       Yule-Walker coefficient of the demeaned OLS residuals, from ``yy``
       (sum of squares), ``y1`` (lag-1 product), ``z``, ``L z`` and the first
       and last frames; mapped through the bias correction (``grid`` as a
       function of ``expected``, skipped when empty) and truncated to
       multiples of ``1 / bins`` (``bins > 0``).
    2. ``first_frame``: 0 keep (weight 1), 1 scale (``sqrt(1 - rho^2)``,
       rho clipped to +-0.999999), 2 drop (weight 0).
    3. ``h`` = whitened ``X'y``; ``theta`` from ``G(rho) theta = h``
       (Cholesky); ``rss`` the whitened residual sum of squares.

    Returns a boolean array: False for units whose ``G(rho)`` is not
    numerically positive definite (``theta`` and ``rss`` left for the
    caller, ``h`` and ``rho`` filled).
    """
    w = Z.shape[0]
    p = Z.shape[1]
    Lm = np.zeros((p, p))
    tmp = np.zeros(p)
    k = np.zeros(p)
    ks = np.zeros(p)
    out = np.zeros(p)
    ok = np.ones(w, dtype=np.bool_)
    mapped = grid.shape[0] > 0
    dosum = ysum.shape[0] > 0
    for u in range(w):
        if estimate:
            zz = 0.0
            zzs = 0.0
            zlz = 0.0
            zsum = 0.0
            z0 = 0.0
            zl = 0.0
            for i in range(p):
                zi = Z[u, i]
                zz += zi * zi
                zzs += zi * Zs[u, i]
                lz = 0.0
                for j in range(p):
                    lz += L[i, j] * Z[u, j]
                zlz += zi * lz
                zsum += Qsum[i] * zi
                z0 += Q0[i] * zi
                zl += Ql[i] * zi
            a0 = yy[u] - zz
            a1 = y1[u] - zzs + zlz
            esum = ysum[u] - zsum if dosum else 0.0
            ebar = esum / n
            e0 = y0[u] - z0
            el = yl[u] - zl
            r0 = (a0 - n * ebar * ebar) / n
            r1 = (a1 - ebar * (2.0 * esum - e0 - el) + (n - 1) * ebar * ebar) / (n - 1)
            r = r1 / r0 if r0 > 1e-13 * (yy[u] / n) else 0.0
            if mapped:
                r = _interp(r, expected, grid)
            if bins > 0:
                r = np.trunc(r * bins) / bins
        else:
            r = rho_in[u]
        if first_frame == 1:
            r = min(max(r, -0.999999), 0.999999)
            c = 1.0 - r * r
        elif first_frame == 2:
            c = 0.0
        else:
            c = 1.0
        rho[u] = r
        for i in range(p):
            a = 0.0
            b = 0.0
            for j in range(p):
                a += RT[i, j] * Z[u, j]
                b += RT[i, j] * Zs[u, j]
            k[i] = a
            ks[i] = b
        v0 = y0[u]
        vl = yl[u]
        for i in range(p):
            h[u, i] = (k[i] - x0[i] * v0) - r * ks[i] + r * r * (k[i] - xl[i] * vl) + c * x0[i] * v0
            tmp[i] = h[u, i]
        if not _gram_solve(gcoef, r, c, tmp, Lm, k, out):
            ok[u] = False
            continue
        yw = (yy[u] - v0 * v0) - 2.0 * r * y1[u] + r * r * (yy[u] - vl * vl) + c * v0 * v0
        fit = 0.0
        for i in range(p):
            theta[u, i] = out[i]
            fit += out[i] * tmp[i]
        rss[u] = yw - fit
    return ok
