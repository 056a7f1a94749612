"""Thin proxies of the multifractal plots, which live in :mod:`llmfmri.plotting`.

They keep the old return types (an Axes, a Figure) for code written before
the Displays; new code can call ``llmfmri.plotting.plot_spectra`` and
``plot_emergence``, which return :class:`~llmfmri.plotting.SpectrumDisplay`
and :class:`~llmfmri.plotting.EmergenceDisplay`. ``llmfmri.plotting`` (and
matplotlib) is imported on the first call only: this whitelisted upward import
is listed in ``ignore_imports`` of the import-linter layers contract.
"""

from __future__ import annotations

__all__ = ["plot_spectra", "plot_emergence"]


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

    See Also
    --------
    llmfmri.plotting.plot_spectra : the same plot, returning a SpectrumDisplay.
    """
    from ..plotting import plot_spectra as _plot_spectra

    return _plot_spectra(spectra, ax=ax, labels=labels, cmap=cmap, legend=legend,
                         title=title).ax_


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

    See Also
    --------
    llmfmri.plotting.plot_emergence : the same plot, returning an EmergenceDisplay.
    """
    from ..plotting import plot_emergence as _plot_emergence

    return _plot_emergence(result, axes=axes, loss=loss, title=title).figure_
