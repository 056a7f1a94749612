"""Plots of llmfmri's results, as Display objects (scikit-learn's pattern).

Each plot is a Display: a ``from_*`` class method computes what is drawn,
once; ``.plot(ax=None, ...)`` draws it, stores the artists (``ax_``,
``figure_``, ``image_``, ``colorbar_``...) and returns the Display. Each has a
``plot_*`` function that does both. matplotlib is imported when a plot is
made, not when this package is imported, and nothing here imports torch.

The geometry is a network's, not a skull's: a map is drawn over layers and
units (no MNI brain). llmfmri's NIfTI maps also open in nilearn
(``nilearn.plotting.plot_stat_map(img, bg_img=None, display_mode="z")``).

- maps: :class:`UnitMapDisplay` (layers x units), :class:`MosaicDisplay`
  (one panel per layer, the fMRI slice mosaic), :class:`GlassDisplay`
  (maximum-intensity projections, the "glass network");
- networks: :class:`NetworkOverlayDisplay`, :class:`LayerProfileDisplay`,
  :class:`OverlapDisplay`, :class:`RepeatabilityDisplay`;
- design and decoding: :class:`DesignMatrixDisplay`,
  :class:`ConfusionMatrixDisplay`;
- time: :class:`TimeCourseDisplay` (reads only the columns it plots);
- validity: :class:`NullCalibrationDisplay`;
- lesions: :class:`LesionEffectDisplay` (behaviour intact, lesioned and under
  every control draw);
- multifractal: :class:`SpectrumDisplay`, :class:`EmergenceDisplay`.

Examples
--------
>>> import numpy as np
>>> from llmfmri.glm import UnitMap
>>> from llmfmri.units import UnitSpace
>>> import llmfmri.plotting as lp
>>> space = UnitSpace({f"layers.{k}.resid_post": 64 for k in range(4)})
>>> z = UnitMap(np.random.default_rng(0).normal(size=256) * 2, space)
>>> disp = lp.plot_unit_map(z, threshold=3.0)          # doctest: +SKIP
>>> disp.colorbar_.ax.get_ylabel()                       # doctest: +SKIP
'z'
"""

from ._decoding import ConfusionMatrixDisplay, plot_confusion_matrix
from ._design import DesignMatrixDisplay, plot_design_matrix
from ._maps import (GlassDisplay, MosaicDisplay, UnitMapDisplay, plot_glass_network,
                    plot_mosaic, plot_unit_map)
from ._multifractal import EmergenceDisplay, SpectrumDisplay, plot_emergence, plot_spectra
from ._networks import (LayerProfileDisplay, NetworkOverlayDisplay, OverlapDisplay,
                        RepeatabilityDisplay, plot_layer_profile, plot_network_overlay,
                        plot_overlap, plot_repeatability)
from ._lesions import LesionEffectDisplay, plot_lesion_effect
from ._null import NullCalibrationDisplay, plot_null_calibration
from ._timecourse import TimeCourseDisplay, plot_time_course

__all__ = [
    "UnitMapDisplay",
    "MosaicDisplay",
    "GlassDisplay",
    "NetworkOverlayDisplay",
    "LayerProfileDisplay",
    "OverlapDisplay",
    "RepeatabilityDisplay",
    "DesignMatrixDisplay",
    "ConfusionMatrixDisplay",
    "TimeCourseDisplay",
    "NullCalibrationDisplay",
    "LesionEffectDisplay",
    "SpectrumDisplay",
    "EmergenceDisplay",
    "plot_unit_map",
    "plot_mosaic",
    "plot_glass_network",
    "plot_network_overlay",
    "plot_layer_profile",
    "plot_overlap",
    "plot_repeatability",
    "plot_design_matrix",
    "plot_confusion_matrix",
    "plot_time_course",
    "plot_null_calibration",
    "plot_lesion_effect",
    "plot_spectra",
    "plot_emergence",
]
