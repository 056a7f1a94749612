"""Multifractal spectra f(alpha) and the degree of emergence E(t) (NeuroMFA)."""

from __future__ import annotations

import numpy as np

from ._base import Display, get_cmap, panel_axes

__all__ = ["SpectrumDisplay", "EmergenceDisplay", "plot_spectra", "plot_emergence"]


def _steps_axis(ax, steps):
    steps = np.asarray(steps, dtype=float)
    if steps.size and np.nanmax(steps) > 10 * max(np.nanmin(steps[steps > 0], initial=1), 1):
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("training step")


class SpectrumDisplay(Display):
    """Multifractal spectra: f(alpha) against alpha, one curve per spectrum or checkpoint.

    Build it with :meth:`from_spectra` (or :func:`plot_spectra`).

    Attributes
    ----------
    ax_, figure_
    lines_ : list of Line2D
        The curves (the dotted alpha0 markers are in ``alpha0_lines_``).
    alpha0_lines_ : list of Line2D
    legend_ : Legend or None
    """

    def __init__(self, alphas, fs, alpha0, *, labels):
        self.alphas = alphas
        self.fs = fs
        self.alpha0 = alpha0
        self.labels = list(labels)

    @classmethod
    def from_spectra(cls, spectra, *, labels=None):
        """The curves of a fitted ``NeuroMFA`` (sample-averaged, per checkpoint) or of spectra.

        Parameters
        ----------
        spectra : NeuroMFA or list of MultifractalSpectrum
        labels : list of str, optional
            One per curve (default: ``step N`` for a NeuroMFA).
        """
        if hasattr(spectra, "mean_spectra"):
            _, alphas, fs = spectra.mean_spectra()
            if labels is None:
                labels = [f"step {s}" for s in spectra.steps_]
            q0 = list(spectra.results_["alpha0"].to_numpy())
        else:
            spectra = list(spectra)
            alphas = [s.alpha for s in spectra]
            fs = [s.f_alpha for s in spectra]
            q0 = [s.alpha0 for s in spectra]
            if labels is None:
                labels = [None] * len(spectra)
        return cls(list(alphas), list(fs), q0, labels=labels)

    def plot(self, ax=None, *, cmap="viridis", legend=True, title=None):
        """Draw the curves (colours along ``cmap``) and dotted lines at each alpha0.

        Returns
        -------
        self
        """
        fig, ax = self._axes(ax, figsize=(5, 4))
        colours = get_cmap(cmap)(np.linspace(0.05, 0.95, max(len(self.alphas), 1)))
        self.lines_, self.alpha0_lines_ = [], []
        for a, f, lab, c, a0 in zip(self.alphas, self.fs, self.labels, colours, self.alpha0):
            self.lines_.append(ax.plot(a, f, "-", color=c, lw=1.5, label=lab)[0])
            self.alpha0_lines_.append(ax.axvline(a0, color=c, lw=0.6, ls=":"))
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel(r"$f(\alpha)$")
        if title:
            ax.set_title(title)
        self.legend_ = None
        if legend and any(lab is not None for lab in self.labels):
            self.legend_ = ax.legend(fontsize="x-small", ncol=2 if len(self.alphas) > 8 else 1,
                                     frameon=False)
        self.ax_, self.figure_ = ax, fig
        return self


class EmergenceDisplay(Display):
    """alpha0, the spectrum width and the degree of emergence E(t) against training step.

    Build it with :meth:`from_result` (or :func:`plot_emergence`).

    Attributes
    ----------
    axes_ : ndarray of 3 Axes
    figure_ : Figure
    loss_ax_ : Axes or None
        The twin axis of the loss on the E(t) panel.
    """

    _PANELS = (("alpha0", r"$\alpha_0$"), ("width", "width $w$"),
               ("emergence", "emergence $E(t)$"))

    def __init__(self, table, *, loss="val_loss"):
        self.table = table
        self.loss = loss

    @classmethod
    def from_result(cls, result, *, loss="val_loss"):
        """From a fitted NeuroMFA or its ``results_`` table.

        Parameters
        ----------
        result : NeuroMFA or pandas.DataFrame
            Columns ``step, alpha0, width, emergence`` and optional ``*_sd``.
        loss : str or None, default="val_loss"
            A column drawn on a twin axis of the E(t) panel when present.
        """
        table = result.results_ if hasattr(result, "results_") else result
        return cls(table, loss=loss)

    def plot(self, axes=None, *, title=None):
        """Draw the three panels.

        Parameters
        ----------
        axes : sequence of 3 Axes, optional

        Returns
        -------
        self
        """
        fig, grid, _ = panel_axes(axes, 3, ncols=3, figsize=(12, 3.4))
        axes = grid.ravel()[:3]
        table = self.table
        steps = table["step"].to_numpy(dtype=float)
        for ax, (col, lab) in zip(axes, self._PANELS):
            y = table[col].to_numpy(dtype=float)
            ax.plot(steps, y, "o-", color="C0", ms=3)
            sd = f"{col}_sd"
            if sd in table and table[sd].notna().any():
                e = table[sd].to_numpy(dtype=float)
                ax.fill_between(steps, y - e, y + e, color="C0", alpha=0.2, lw=0)
            ax.set_ylabel(lab)
            _steps_axis(ax, steps)
        self.loss_ax_ = None
        loss = self.loss
        if loss and loss in table and table[loss].notna().any():
            tw = axes[2].twinx()
            tw.plot(steps, table[loss].to_numpy(dtype=float), "s--", color="C3", ms=3)
            tw.set_ylabel(loss.replace("_", " "), color="C3")
            self.loss_ax_ = tw
        if title:
            fig.suptitle(title)
        self.axes_, self.figure_ = np.asarray(axes, dtype=object), fig
        return self


def plot_spectra(spectra, ax=None, *, labels=None, cmap="viridis", legend=True, title=None):
    """Plot f(alpha) against alpha (see :class:`SpectrumDisplay`).

    Parameters
    ----------
    spectra : NeuroMFA or list of MultifractalSpectrum
    ax : matplotlib Axes, optional
    labels : list of str, optional
    cmap : str, default="viridis"
    legend : bool, default=True
    title : str, optional

    Returns
    -------
    SpectrumDisplay
        (``llmfmri.multifractal.plot_spectra`` returns its ``ax_``.)
    """
    return SpectrumDisplay.from_spectra(spectra, labels=labels).plot(
        ax=ax, cmap=cmap, legend=legend, title=title)


def plot_emergence(result, axes=None, *, loss="val_loss", title=None):
    """Plot alpha0, width and E(t) against training step (see :class:`EmergenceDisplay`).

    Returns
    -------
    EmergenceDisplay
        (``llmfmri.multifractal.plot_emergence`` returns its ``figure_``.)
    """
    return EmergenceDisplay.from_result(result, loss=loss).plot(axes=axes, title=title)
