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

__all__ = ["t_logsf", "f_logsf", "z_from_t", "z_from_f", "t_sf", "f_sf", "ratio_stat"]

_LOG_FLOOR = -700.0  # below this scipy's log tails are unreliable or -inf
_BIG = np.finfo(np.float64).max  # an infinite statistic's z is the z of this one


def ratio_stat(effect, variance):
    """``effect / sqrt(variance)``, defined where the variance is 0.

    A zero variance with a zero effect (a constant unit, or a unit fitted
    exactly whose effect for this contrast is exactly 0) gives 0: there is no
    effect. A zero variance with a non-zero effect (a unit the design fits
    exactly) gives ``+inf`` or ``-inf``: the effect is known without error,
    the strongest evidence there is, not none.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.glm._stats import ratio_stat
    >>> ratio_stat(np.array([2.0, 0.0, -1.0, 3.0]), np.array([4.0, 0.0, 0.0, 0.0])).tolist()
    [1.0, 0.0, -inf, inf]
    """
    effect = np.asarray(effect, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = effect / np.sqrt(variance)
    exact = np.where(effect == 0, 0.0, np.copysign(np.inf, effect))
    return np.where(variance > 0, s, exact) + 0.0


def _log_betainc(a, b, x, max_iter=10000, logx=None):
    """log I_x(a, b) for x < (a + 1) / (a + b + 2), by the continued fraction.

    ``logx`` (``log(x)``, computed by the caller without underflow) keeps the
    result finite where ``x`` itself underflows to 0.
    """
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
        lx = np.log(x) if logx is None else np.broadcast_to(logx, x.shape)
        return (a * lx + b * np.log1p(-x) - special.betaln(a, b) - np.log(a)
                + np.log(h))


def t_logsf(t, dof):
    """log P(T > t) for Student's t with ``dof`` degrees of freedom (``inf``: normal)."""
    t = np.asarray(t, dtype=np.float64)
    if np.isinf(dof):
        return stats.norm.logsf(t)
    out = np.asarray(stats.t.logsf(t, dof), dtype=np.float64)
    far = (out < _LOG_FLOOR) & (t > 0) & np.isfinite(t)
    if np.any(far):
        tf = t[far]
        # x = dof / (dof + t^2) without overflowing t^2 (t up to the largest double)
        logx = np.log(dof) - 2.0 * np.log(tf) - np.log1p(dof / tf / tf)
        out = out.copy()
        out[far] = np.log(0.5) + _log_betainc(dof / 2.0, 0.5, np.exp(logx), logx=logx)
    return out


def f_logsf(f, dfn, dfd):
    """log P(F > f) for Fisher's F(``dfn``, ``dfd``) (``dfd = inf``: chi2(dfn) / dfn)."""
    f = np.asarray(f, dtype=np.float64)
    if np.isinf(dfd):
        return stats.chi2.logsf(f * dfn, dfn)
    out = np.asarray(stats.f.logsf(f, dfn, dfd), dtype=np.float64)
    far = (out < _LOG_FLOOR) & (f > 0) & np.isfinite(f)
    if np.any(far):
        ff = f[far]
        # x = dfd / (dfd + dfn f) without overflowing dfn f
        logx = np.log(dfd) - np.log(dfn) - np.log(ff) - np.log1p(dfd / dfn / ff)
        out = out.copy()
        out[far] = _log_betainc(dfd / 2.0, dfn / 2.0, np.exp(logx), logx=logx)
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
    probabilities, so it stays finite for any finite ``t``. An infinite ``t``
    (an exact fit, see :func:`ratio_stat`) gets the largest finite z the
    transform gives, that of the largest double, so z maps stay finite and
    still rank an exact effect above every estimated one (its p value is 0).

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.glm import z_from_t
    >>> float(np.round(z_from_t(1.959963984540054, np.inf), 6))
    1.959964
    >>> bool(np.isfinite(z_from_t(np.inf, 10.0)) and z_from_t(np.inf, 10.0) > z_from_t(1e300, 10.0))
    True
    """
    t = np.clip(np.asarray(t, dtype=np.float64), -_BIG, _BIG)
    if np.isinf(dof):
        return t + 0.0
    z = -special.ndtri_exp(t_logsf(np.abs(t), dof))
    return np.where(t < 0, -z, z)


def z_from_f(f, dfn, dfd):
    """z score with the same upper tail probability as ``f`` (negative when p > 0.5).

    An infinite ``f`` (an exact fit) gets the z of the largest double, as in :func:`z_from_t`.
    """
    f = np.minimum(np.asarray(f, dtype=np.float64), _BIG)
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
