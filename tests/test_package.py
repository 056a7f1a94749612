"""Packaging: light import, the public surface, layers, the console script."""

import importlib.util
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import llmfmri

ROOT = Path(__file__).resolve().parents[1]

#: The top-level names. Changing this list is changing the public API: do it on purpose.
PUBLIC = [
    "__version__", "collapse_events", "compute_contrast", "ConfigError", "ConstantUnitWarning",
    "ContextLengthError", "Contrast", "ContrastError", "correct", "DataError", "Decoder",
    "DEFAULT_MODEL", "degree_of_emergence", "DesignMatrixError", "DesignWarning", "FirstLevelGLM",
    "fit_statsmodels", "get_adapter", "get_data_home", "GLMResults", "identify", "intervene",
    "LeakageWarning", "Lesion", "lesion", "library_paradigms", "list_sites", "load_model",
    "load_paradigm", "load_recording", "localizer_study", "make_design_matrix", "make_events",
    "ModelLoadError", "ModelNotFoundError", "multifractal_spectrum", "MultifractalError",
    "MultifractalSpectrum", "MultifractalWarning", "Network", "NeuroMFA", "neuron_network",
    "NeuronNetwork", "NotFittedError", "OutputNameError", "overlap_matrix", "overlap_test",
    "Paradigm", "ParadigmError", "PerfectFitWarning", "permutation_max_t", "record", "Recording",
    "RecordingConflictError", "RecordingIncompleteError", "RecordingLockedError", "repeatability",
    "run_glm", "SecondLevelGLM", "set_verbose", "SiteError", "StorageWarning",
    "summarize_prompts", "SweepError", "task_map", "threshold", "top_k", "UnitMap", "UnitSpace",
    "UnknownArchitectureError"
]

#: stages that must never import torch, once they exist (DESIGN.md)
TORCH_FREE = ["units", "paradigm", "io", "design", "glm", "networks", "decoding", "plotting",
              "reports"]


def test_import_is_light():
    code = ("import sys, llmfmri; heavy = [m for m in ('torch', 'matplotlib', 'transformers', "
            "'nilearn', 'zarr', 'sklearn') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_are_pinned_and_resolve():
    assert sorted(llmfmri.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(llmfmri, name) is not None
    from llmfmri import exceptions

    assert set(exceptions.__all__) <= set(PUBLIC)  # every error class is promoted


def test_stages_listed_are_the_stages_that_exist():
    on_disk = {m.name for m in pkgutil.iter_modules(llmfmri.__path__)
               if not m.name.startswith("_")}
    assert set(llmfmri._SUBPACKAGES) == on_disk
    for name in ["networks", "decoding", "lesions", "plotting", "reports", "no_such_stage"]:
        exists = importlib.util.find_spec(f"llmfmri.{name}") is not None
        assert hasattr(llmfmri, name) is exists  # False, not an exception, until it exists
    assert "glm" in dir(llmfmri) and hasattr(llmfmri, "glm")


def test_analysis_stages_do_not_import_torch():
    stages = [s for s in TORCH_FREE if importlib.util.find_spec(f"llmfmri.{s}") is not None]
    code = ("import sys; import llmfmri.recording._reader; "
            + "; ".join(f"import llmfmri.{s}" for s in stages)
            + "; print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden = next(c for c in contracts["contracts"] if c["type"] == "forbidden")
    assert sorted(forbidden["source_modules"]) == sorted(f"llmfmri.{s}" for s in stages), \
        "every torch-free stage that exists belongs in the import-linter contract"


def test_version():
    assert llmfmri.__version__.count(".") >= 2


def test_unknown_attribute_has_did_you_mean():
    with pytest.raises(AttributeError, match="Did you mean 'load_model'"):
        llmfmri.load_modle  # noqa: B018


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "llmfmri.cli", "--help"], capture_output=True,
                         text=True, check=True)
    for command in ("run", "fetch", "validate", "record", "glm", "report", "lesion", "mfa",
                    "sweep"):
        assert command in out.stdout


def test_import_contracts():
    """The layers of docs/architecture.md, checked by import-linter (lint-imports)."""
    import shutil

    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe], capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_stage_imports_another_stages_private_names():
    """A stage uses another's public names only (``from ..design._design import`` is refused)."""
    import ast

    offenders = []
    for path in (ROOT / "llmfmri").rglob("*.py"):
        stage = path.relative_to(ROOT / "llmfmri").parts[0]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module:
                parts = node.module.split(".")
                other = parts[0]
                private = [p for p in parts[1:] if p.startswith("_")]
                names = [a.name for a in node.names if a.name.startswith("_")]
                if other not in (stage, "_utils", "_version") and (private or names):
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import "
                                     f"{[a.name for a in node.names]}")
    assert not offenders, offenders
