"""Decoding: the confusion matrix of held-out identification or of a decoder."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ._base import Display, add_colorbar, get_cmap

__all__ = ["ConfusionMatrixDisplay", "plot_confusion_matrix"]


class ConfusionMatrixDisplay(Display):
    """Counts of (true, predicted) classes of held-out samples, with the headline numbers.

    Rows are the presented task, columns the predicted one; the title gives
    the accuracy, chance and the permutation p value. Build it with
    :meth:`from_result` (a :class:`llmfmri.decoding.DecodingResult`) or
    :meth:`from_frame` (the main job's ``identification-confusion.tsv``).

    Attributes
    ----------
    ax_, figure_
    image_ : AxesImage
    texts_ : ndarray of Text, shape (n_true, n_predicted)
    colorbar_ : Colorbar or None
    """

    def __init__(self, confusion, *, accuracy=None, chance=None, p_value=None, title="",
                 normalize=False):
        self.confusion = confusion
        self.accuracy = accuracy
        self.chance = chance
        self.p_value = p_value
        self.title = title
        self.normalize = bool(normalize)

    @classmethod
    def from_frame(cls, confusion, *, accuracy=None, chance=None, p_value=None, normalize=False,
                   title=None):
        """From a table of counts (rows: true class, columns: predicted class).

        Parameters
        ----------
        confusion : pandas.DataFrame
        accuracy, chance, p_value : float, optional
            Shown in the title; ``accuracy`` is computed from the counts by default.
        normalize : bool, default=False
            Show the fraction of each row (of each true class) instead of counts.

        Raises
        ------
        DataError
            For an empty table or negative counts.
        """
        confusion = pd.DataFrame(confusion)
        if confusion.empty:
            raise DataError("confusion is empty: no held-out sample was classified.")
        counts = confusion.to_numpy(dtype=float)
        if (counts < 0).any() or not np.isfinite(counts).all():
            raise DataError("confusion must hold counts (finite, >= 0).")
        if accuracy is None:
            diag = sum(confusion.at[c, c] for c in confusion.index if c in confusion.columns)
            accuracy = float(diag / counts.sum()) if counts.sum() else float("nan")
        if chance is None:
            chance = 1.0 / len(confusion.index)
        return cls(confusion, accuracy=accuracy, chance=chance, p_value=p_value,
                   title=title if title is not None else "identification of held-out blocks",
                   normalize=normalize)

    @classmethod
    def from_result(cls, result, *, normalize=False, title=None):
        """From :func:`llmfmri.decoding.identify` or :meth:`Decoder.fit` (a ``DecodingResult``)."""
        from ..decoding import DecodingResult

        if not isinstance(result, DecodingResult):
            raise TypeError(f"result must be a DecodingResult (from identify or Decoder), but "
                            f"got {type(result).__name__}; use from_frame for a table.")
        default = ("identification of held-out blocks" if result.method == "identification"
                   else f"decoding ({result.scoring})")
        return cls.from_frame(result.confusion, accuracy=result.accuracy, chance=result.chance,
                              p_value=result.p_value, normalize=normalize,
                              title=default if title is None else title)

    def plot(self, ax=None, *, cmap="Blues", colorbar=True, values=True, title=None):
        """Draw the matrix.

        Returns
        -------
        self
        """
        counts = self.confusion.to_numpy(dtype=float)
        n_true, n_pred = counts.shape
        data = counts
        if self.normalize:
            total = counts.sum(axis=1, keepdims=True)
            data = counts / np.where(total > 0, total, 1.0)
        fig, ax = self._axes(ax, figsize=(2.4 + 0.7 * n_pred, 1.8 + 0.6 * n_true))
        vmax = float(data.max()) if data.size and data.max() > 0 else 1.0
        self.image_ = ax.imshow(data, cmap=get_cmap(cmap), vmin=0, vmax=vmax,
                                interpolation="nearest")
        ax.set_xticks(np.arange(n_pred), [str(c) for c in self.confusion.columns], rotation=40,
                      ha="right", fontsize="small")
        ax.set_yticks(np.arange(n_true), [str(c) for c in self.confusion.index],
                      fontsize="small")
        ax.set_xlabel("predicted")
        ax.set_ylabel("presented")
        texts = np.full((n_true, n_pred), None, dtype=object)
        if values:
            for i in range(n_true):
                for j in range(n_pred):
                    text = f"{data[i, j]:.2f}" if self.normalize else f"{int(counts[i, j])}"
                    texts[i, j] = ax.text(j, i, text, ha="center", va="center",
                                          fontsize="small",
                                          color="white" if data[i, j] > 0.6 * vmax else "black")
        self.texts_ = texts
        bits = []
        if self.accuracy is not None and np.isfinite(self.accuracy):
            bits.append(f"accuracy {self.accuracy:.2f}")
        if self.chance is not None:
            bits.append(f"chance {self.chance:.2f}")
        if self.p_value is not None and np.isfinite(self.p_value):
            bits.append(f"permutation p = {self.p_value:.3g}")
        head = self.title if title is None else title
        ax.set_title("\n".join(t for t in (head, ", ".join(bits)) if t), fontsize="medium")
        self.colorbar_ = add_colorbar(fig, self.image_, ax,
                                      label="fraction of row" if self.normalize else "count",
                                      fraction=0.046, pad=0.03) if colorbar else None
        self.ax_, self.figure_ = ax, fig
        return self


def plot_confusion_matrix(result, *, normalize=False, title=None, ax=None, cmap="Blues",
                          colorbar=True):
    """Plot the confusion matrix of a DecodingResult or of a table.

    See :class:`ConfusionMatrixDisplay`.

    Returns
    -------
    ConfusionMatrixDisplay
    """
    from ..decoding import DecodingResult

    if isinstance(result, DecodingResult):
        disp = ConfusionMatrixDisplay.from_result(result, normalize=normalize, title=title)
    else:
        disp = ConfusionMatrixDisplay.from_frame(result, normalize=normalize, title=title)
    return disp.plot(ax=ax, cmap=cmap, colorbar=colorbar)
