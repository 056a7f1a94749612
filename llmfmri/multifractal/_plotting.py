"""Plots of multifractal spectra and of E(t). matplotlib is imported inside each function."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_spectra", "plot_emergence"]


def _steps_axis(ax, steps):
    steps = np.asarray(steps, dtype=float)
    if steps.size and np.nanmax(steps) > 10 * max(np.nanmin(steps[steps > 0], initial=1), 1):
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("training step")


def plot_spectra(spectra, ax=None, *, labels=None, cmap="viridis", legend=True, title=None):
    """Plot f(alpha) against alpha.

    Parameters
    ----------
    spectra : NeuroMFA or list of MultifractalSpectrum
        A fitted :class:`NeuroMFA` (one sample-averaged curve per checkpoint, coloured
        by training step) or spectra to draw one by one.
    ax : matplotlib Axes, optional
    labels : list of str, optional
        One per curve (default: ``step N`` for a NeuroMFA).
    cmap : str
        Colour map along the curves.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    if hasattr(spectra, "mean_spectra"):
        _, alphas, fs = spectra.mean_spectra()
        if labels is None:
            labels = [f"step {s}" for s in spectra.steps_]
        q0 = spectra.results_["alpha0"].to_numpy()
    else:
        spectra = list(spectra)
        alphas = [s.alpha for s in spectra]
        fs = [s.f_alpha for s in spectra]
        q0 = [s.alpha0 for s in spectra]
        if labels is None:
            labels = [None] * len(spectra)
    colours = plt.get_cmap(cmap)(np.linspace(0.05, 0.95, max(len(alphas), 1)))
    for a, f, lab, c, a0 in zip(alphas, fs, labels, colours, q0):
        ax.plot(a, f, "-", color=c, lw=1.5, label=lab)
        ax.axvline(a0, color=c, lw=0.6, ls=":")
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(r"$f(\alpha)$")
    if title:
        ax.set_title(title)
    if legend and any(lab is not None for lab in labels):
        ax.legend(fontsize="x-small", ncol=2 if len(alphas) > 8 else 1, frameon=False)
    return ax


def plot_emergence(result, axes=None, *, loss="val_loss", title=None):
    """alpha0, width and the degree of emergence E(t) against training step.

    Parameters
    ----------
    result : NeuroMFA or pandas.DataFrame
        A fitted NeuroMFA or its ``results_`` table (columns ``step, alpha0, width,
        emergence`` and optional ``*_sd``).
    axes : sequence of 3 matplotlib Axes, optional
    loss : str or None
        A column (e.g. ``"val_loss"``) drawn on a twin axis of the E(t) panel when present.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    table = result.results_ if hasattr(result, "results_") else result
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    else:
        fig = axes[0].figure
    steps = table["step"].to_numpy(dtype=float)
    for ax, col, lab in zip(axes, ("alpha0", "width", "emergence"),
                            (r"$\alpha_0$", "width $w$", "emergence $E(t)$")):
        y = table[col].to_numpy(dtype=float)
        ax.plot(steps, y, "o-", color="C0", ms=3)
        sd = f"{col}_sd"
        if sd in table and table[sd].notna().any():
            e = table[sd].to_numpy(dtype=float)
            ax.fill_between(steps, y - e, y + e, color="C0", alpha=0.2, lw=0)
        ax.set_ylabel(lab)
        _steps_axis(ax, steps)
    if loss and loss in table and table[loss].notna().any():
        tw = axes[2].twinx()
        tw.plot(steps, table[loss].to_numpy(dtype=float), "s--", color="C3", ms=3)
        tw.set_ylabel(loss.replace("_", " "), color="C3")
    if title:
        fig.suptitle(title)
    return fig
