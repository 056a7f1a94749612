"""Docstring examples run in empty globals, as they would when pasted into a fresh session.

``pytest --doctest-modules`` (pyproject ``addopts``) runs every example with its
module's globals, so an example passes even when it uses a name it never imports
(``np``, ``pd``, the documented function itself). Here each docstring's examples run
with ``globs={}``: every name an example uses must come from its own import lines.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import sys

import pytest

import llmfmri

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names():
    names = ["llmfmri"]
    names += [m.name for m in pkgutil.walk_packages(llmfmri.__path__, "llmfmri.",
                                                    onerror=lambda name: None)]
    return sorted(set(names))


def _find(module):
    return [t for t in doctest.DocTestFinder().find(module, globs={}) if t.examples]


def _cases():
    cases = []
    for name in _module_names():
        try:
            module = importlib.import_module(name)
        except Exception:  # reported by the test below, not hidden
            cases.append(pytest.param(name, None, id=f"{name}[import]"))
            continue
        cases += [pytest.param(name, t.name, id=t.name) for t in _find(module)]
    return cases


@pytest.mark.parametrize(("module_name", "test_name"), _cases())
def test_docstring_examples_run_in_empty_globals(module_name, test_name, monkeypatch, tmp_path):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)  # an example that writes a relative path writes here
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and not err.name.startswith("llmfmri"):
            pytest.skip(f"{module_name} needs the optional dependency {err.name!r}")
        raise
    if test_name is None:
        pytest.fail(f"{module_name} failed to import at collection, but imports now")
    (test,) = [t for t in _find(module) if t.name == test_name]
    runner = doctest.DocTestRunner(verbose=False, optionflags=OPTIONFLAGS)
    report = io.StringIO()
    try:
        result = runner.run(test, out=report.write, clear_globs=True)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples of {test_name} fail in empty globals "
        f"(a user pasting them gets this; add the missing imports to the example):\n"
        f"{report.getvalue()}")
