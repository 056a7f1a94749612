"""Tail probabilities and z scores of t and F statistics, stable far into the tails.

scipy's ``t.logsf`` / ``f.logsf`` underflow to ``-inf`` once the tail
probability is below ~1e-308 (t ~ 40 with 2,000 degrees of freedom, which
token series reach easily). There we evaluate the regularised incomplete beta
function in log space with its continued fraction (Numerical Recipes'
``betacf``, modified Lentz), so z scores stay finite and monotone.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["t_logsf", "f_logsf", "z_from_t", "z_from_f", "t_sf", "f_sf"]

_LOG_FLOOR = -700.0  # below this scipy's log tails are unreliable or -inf


def _log_betainc(a, b, x, max_iter=10000):
    """log I_x(a, b) for x < (a + 1) / (a + b + 2), by the continued fraction."""
    a, b, x = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float),
                                  np.asarray(x, float))
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < tiny, tiny, d)
    d = 1.0 / d
    h = d.copy()
    done = np.zeros(x.shape, dtype=bool)
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        h = np.where(done, h, h * d * c)
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        delta = d * c
        h = np.where(done, h, h * delta)
        done |= np.abs(delta - 1.0) < 1e-15
        if done.all():
            break
    with np.errstate(divide="ignore"):
        return (a * np.log(x) + b * np.log1p(-x) - special.betaln(a, b) - np.log(a)
                + np.log(h))


def t_logsf(t, dof):
    """log P(T > t) for Student's t with ``dof`` degrees of freedom (``inf``: normal)."""
    t = np.asarray(t, dtype=np.float64)
    if np.isinf(dof):
        return stats.norm.logsf(t)
    out = np.asarray(stats.t.logsf(t, dof), dtype=np.float64)
    far = (out < _LOG_FLOOR) & (t > 0)
    if np.any(far):
        tf = t[far]
        x = dof / (dof + tf * tf)
        out = out.copy()
        out[far] = np.log(0.5) + _log_betainc(dof / 2.0, 0.5, x)
    return out


def f_logsf(f, dfn, dfd):
    """log P(F > f) for Fisher's F(``dfn``, ``dfd``) (``dfd = inf``: chi2(dfn) / dfn)."""
    f = np.asarray(f, dtype=np.float64)
    if np.isinf(dfd):
        return stats.chi2.logsf(f * dfn, dfn)
    out = np.asarray(stats.f.logsf(f, dfn, dfd), dtype=np.float64)
    far = (out < _LOG_FLOOR) & (f > 0)
    if np.any(far):
        ff = f[far]
        x = dfd / (dfd + dfn * ff)
        out = out.copy()
        out[far] = _log_betainc(dfd / 2.0, dfn / 2.0, x)
    return out


def t_sf(t, dof):
    """P(T > t) (one-sided, upper tail)."""
    t = np.asarray(t, dtype=np.float64)
    if np.isinf(dof):
        return stats.norm.sf(t)
    return stats.t.sf(t, dof)


def f_sf(f, dfn, dfd):
    """P(F > f)."""
    f = np.asarray(f, dtype=np.float64)
    if np.isinf(dfd):
        return stats.chi2.sf(f * dfn, dfn)
    return stats.f.sf(f, dfn, dfd)


def z_from_t(t, dof):
    """z score with the same one-sided tail probability as ``t`` (sign kept, symmetric).

    ``z = sign(t) * Phi^{-1}(1 - P(T > |t|))`` computed from log tail
    probabilities, so it stays finite for any finite ``t``.

    Examples
    --------
    >>> float(np.round(z_from_t(1.959963984540054, np.inf), 6))
    1.959964
    """
    t = np.asarray(t, dtype=np.float64)
    z = -special.ndtri_exp(t_logsf(np.abs(t), dof))
    return np.where(t < 0, -z, z)


def z_from_f(f, dfn, dfd):
    """z score with the same upper tail probability as ``f`` (negative when p > 0.5)."""
    f = np.asarray(f, dtype=np.float64)
    logsf = f_logsf(f, dfn, dfd)
    z = -special.ndtri_exp(logsf)
    low = logsf > np.log(0.5)
    if np.any(low):
        if np.isinf(dfd):
            logcdf = stats.chi2.logcdf(f[low] * dfn, dfn)
        else:
            logcdf = stats.f.logcdf(f[low], dfn, dfd)
        z = np.asarray(z, dtype=np.float64).copy()
        z[low] = special.ndtri_exp(logcdf)
    return z
