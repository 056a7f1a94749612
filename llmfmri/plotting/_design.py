"""Design matrices (DataFrames indexed by frame), drawn as nilearn draws them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DesignMatrixError
from ._base import Display

__all__ = ["DesignMatrixDisplay", "plot_design_matrix"]


class DesignMatrixDisplay(Display):
    """A design matrix as an image: one row per frame (token), one column per regressor.

    Each column is scaled by its largest absolute value (``rescale=True``),
    as nilearn's ``plot_design_matrix`` does, so boxcars, drifts and the
    constant share one grey scale. Build it with :meth:`from_design_matrix`
    (or :func:`plot_design_matrix`).

    Attributes
    ----------
    ax_, figure_
    image_ : AxesImage
    """

    def __init__(self, values, *, columns, n_frames, title="", rescale=True):
        self.values = values
        self.columns = list(columns)
        self.n_frames = int(n_frames)
        self.title = title
        self.rescale = bool(rescale)

    @classmethod
    def from_design_matrix(cls, design_matrix, *, rescale=True, title=None):
        """Compute the image of a design matrix.

        Parameters
        ----------
        design_matrix : pandas.DataFrame of shape (n_frames, n_regressors)
            From :func:`llmfmri.make_design_matrix` or ``FirstLevelGLM.design_matrices_``.
        rescale : bool, default=True
            Divide each column by its largest ``|value|``.
        title : str, optional

        Raises
        ------
        DesignMatrixError
            For something other than a non-empty, numeric, finite DataFrame.
        """
        if not isinstance(design_matrix, pd.DataFrame):
            raise DesignMatrixError(
                f"design_matrix must be a pandas DataFrame (from make_design_matrix), but got "
                f"{type(design_matrix).__name__}."
            )
        if design_matrix.shape[0] == 0 or design_matrix.shape[1] == 0:
            raise DesignMatrixError(f"design_matrix is empty (shape {design_matrix.shape}).")
        try:
            values = design_matrix.to_numpy(dtype=float)
        except (TypeError, ValueError) as err:
            raise DesignMatrixError(f"design_matrix must be numeric: {err}") from None
        if not np.isfinite(values).all():
            raise DesignMatrixError("design_matrix holds NaN or infinite values.")
        if rescale:
            scale = np.abs(values).max(axis=0)
            values = values / np.where(scale > 0, scale, 1.0)
        return cls(values, columns=[str(c) for c in design_matrix.columns],
                   n_frames=design_matrix.shape[0], title=title or "", rescale=rescale)

    def plot(self, ax=None, *, cmap="gray", title=None):
        """Draw the matrix.

        Returns
        -------
        self
        """
        k = len(self.columns)
        fig, ax = self._axes(ax, figsize=(min(1.6 + 0.45 * k, 10.0), 4.5))
        lo = -1.0 if self.values.min() < 0 else 0.0
        self.image_ = ax.imshow(self.values, aspect="auto", cmap=cmap, vmin=lo, vmax=1.0,
                                interpolation="nearest")
        ax.set_xticks(np.arange(k), self.columns, rotation=50, ha="right", fontsize="small")
        ax.set_ylabel("frame (token)")
        ax.set_title(self.title if title is None else title, fontsize="medium")
        self.ax_, self.figure_ = ax, fig
        return self


def plot_design_matrix(design_matrix, *, rescale=True, title=None, ax=None, cmap="gray"):
    """Plot a design matrix (see :class:`DesignMatrixDisplay`).

    Returns
    -------
    DesignMatrixDisplay
    """
    return DesignMatrixDisplay.from_design_matrix(design_matrix, rescale=rescale,
                                                  title=title).plot(ax=ax, cmap=cmap)
