"""llmfmri: study large language models the way cognitive neuroscience studies brains.

``import llmfmri`` is light: it imports neither torch nor matplotlib. Public
names are resolved lazily from their subpackages on first use.

Which names are promoted to the top level: the entry point of each stage
(``load_paradigm``, ``load_model``, ``record``, ``make_design_matrix``, the
estimators, ``UnitMap``...), ``set_verbose``, and every error and warning class
(from :mod:`llmfmri.exceptions`). Everything else is reached through its stage,
e.g. ``llmfmri.glm.contrast_matrix``. Stages are attributes too
(``llmfmri.glm``); ``hasattr(llmfmri, name)`` is False for anything that does
not exist. ``tests/test_package.py`` pins this list.

Examples
--------
>>> import llmfmri as lf
>>> lf.__version__  # doctest: +SKIP
'0.1.0.dev0'
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .exceptions import __all__ as _EXCEPTIONS

# public name -> subpackage that defines it
_LAZY = {
    # paradigms
    "load_paradigm": "llmfmri.paradigm",
    "Paradigm": "llmfmri.paradigm",
    "collapse_events": "llmfmri.paradigm",
    "make_events": "llmfmri.paradigm",
    "library_paradigms": "llmfmri.paradigm",
    # models
    "load_model": "llmfmri.models",
    "get_adapter": "llmfmri.models",
    "list_sites": "llmfmri.models",
    "DEFAULT_MODEL": "llmfmri.models",
    # units
    "UnitSpace": "llmfmri.units",
    # recording
    "record": "llmfmri.recording",
    "Recording": "llmfmri.recording",
    "load_recording": "llmfmri.recording",
    "intervene": "llmfmri.recording",
    # design and GLM
    "make_design_matrix": "llmfmri.design",
    "run_glm": "llmfmri.glm",
    "compute_contrast": "llmfmri.glm",
    "FirstLevelGLM": "llmfmri.glm",
    "SecondLevelGLM": "llmfmri.glm",
    "UnitMap": "llmfmri.glm",
    "correct": "llmfmri.glm",
    "permutation_max_t": "llmfmri.glm",
    "fit_statsmodels": "llmfmri.glm",
    "summarize_prompts": "llmfmri.glm",
    "Contrast": "llmfmri.glm",
    "GLMResults": "llmfmri.glm",
    # networks and decoding
    "task_map": "llmfmri.networks",
    "threshold": "llmfmri.networks",
    "top_k": "llmfmri.networks",
    "Network": "llmfmri.networks",
    "overlap_matrix": "llmfmri.networks",
    "overlap_test": "llmfmri.networks",
    "repeatability": "llmfmri.networks",
    "identify": "llmfmri.decoding",
    "Decoder": "llmfmri.decoding",
    # lesions
    "lesion": "llmfmri.lesions",
    "Lesion": "llmfmri.lesions",
    "localizer_study": "llmfmri.lesions",
    # multifractal
    "multifractal_spectrum": "llmfmri.multifractal",
    "neuron_network": "llmfmri.multifractal",
    "NeuroMFA": "llmfmri.multifractal",
    "NeuronNetwork": "llmfmri.multifractal",
    "MultifractalSpectrum": "llmfmri.multifractal",
    "degree_of_emergence": "llmfmri.multifractal",
    # helpers
    "set_verbose": "llmfmri._utils",
    "get_data_home": "llmfmri._utils",
}
_LAZY.update({name: "llmfmri.exceptions" for name in _EXCEPTIONS})  # every one of them

#: the stages and modules reachable as attributes (``llmfmri.glm``); only what exists
_SUBPACKAGES = ("paradigm", "models", "units", "io", "recording", "design", "glm", "networks",
                "decoding", "lesions", "multifractal", "plotting", "reports", "sweeps",
                "exceptions", "commands", "cli", "main")

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"llmfmri.{name}")
    module_name = _LAZY.get(name)
    if module_name is None:
        from ._utils import did_you_mean

        raise AttributeError(
            f"module 'llmfmri' has no attribute {name!r}." + did_you_mean(name, _LAZY)
        )
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))
