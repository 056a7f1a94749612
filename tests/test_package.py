"""Packaging: light import, public names, the console script."""

import subprocess
import sys

import pytest

import llmfmri


def test_import_is_light():
    code = ("import sys, llmfmri; heavy = [m for m in ('torch', 'matplotlib', 'transformers', "
            "'nilearn', 'zarr') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_analysis_layers_do_not_import_torch():
    code = ("import sys; import llmfmri.units, llmfmri.recording._reader; "
            "r = llmfmri.recording.Recording; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version():
    assert llmfmri.__version__.count(".") >= 2


def test_unknown_attribute_has_did_you_mean():
    with pytest.raises(AttributeError, match="Did you mean 'load_model'"):
        llmfmri.load_modle  # noqa: B018


def test_lazy_names_resolve():
    assert llmfmri.UnitSpace.__name__ == "UnitSpace"
    assert callable(llmfmri.load_model)
    assert callable(llmfmri.record)


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "llmfmri.cli", "--help"], capture_output=True,
                         text=True, check=True)
    for command in ("run", "fetch", "record"):
        assert command in out.stdout


def test_import_contracts():
    """The layers of DESIGN.md, checked by import-linter (lint-imports)."""
    import shutil

    exe = shutil.which("lint-imports") or str(__import__("pathlib").Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.returncode == 0, out.stdout + out.stderr
