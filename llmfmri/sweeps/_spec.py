"""Sweep files: a paradigm and the axes to cross, validated with file/line/field errors."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from .._utils import did_you_mean
from .._utils.yamlsource import Source, format_path
from ..exceptions import SweepError
from ..io import bids_label, check_unique_labels

__all__ = ["Sweep", "Cell", "load_sweep", "AXES", "STEPS", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
#: the axes a sweep may cross, and what each value is
AXES = {
    "model": "a Hugging Face id, a local model folder (relative to the sweep file) or 'default'",
    "revision": "a Hub revision (branch, tag or commit) of the model, or null",
    "seed": "the generation seed of the paradigm (sampling needs generation.do_sample: true)",
}
#: what a cell can run: the recording always, then the main job's analysis
STEPS = ("record", "networks")
_KEYS = ("schema_version", "name", "description", "paradigm", "generation", "sites", "axes",
         "steps", "analysis", "resources", "group")
_GENERATION = ("max_new_tokens", "do_sample", "temperature", "top_p", "stop", "chat_template")
_ANALYSIS = ("inference", "alpha", "correction", "n_permutations", "random_state")
_RESOURCES = ("num_cpus", "num_gpus")
_GROUP = ("regress",)
_INFERENCES = ("prompt", "permutation", "token")
_CORRECTIONS = ("fdr", "bonferroni", "maxt")


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep: a value for every axis, and its label (a BIDS label).

    Attributes
    ----------
    label : str
        Letters and digits, unique within the sweep (``seed3``, ``modelSmolLM2seed3``).
    params : dict
        Axis -> value.
    index : int
        Position in the sweep's order.
    """

    label: str
    params: dict
    index: int


@dataclass(frozen=True)
class Sweep:
    """A validated sweep (see ``docs/sweeps.md`` for the file format).

    Attributes
    ----------
    name : str
    paradigm : str
        A library paradigm name, or a paradigm file resolved against the sweep's folder.
    generation : dict
        Overrides of the paradigm's ``generation`` block.
    sites : list of str
    axes : dict of str -> list
        Every combination is a cell (``cells()``).
    steps : tuple of str
    analysis : dict
        Options of the networks step (``inference``, ``alpha``, ``correction``,
        ``n_permutations``, ``random_state``).
    resources : dict
        ``num_cpus`` and ``num_gpus`` of each cell (Ray places cells by them).
    group : dict
        Group analyses over cells: ``regress`` lists axes used as regressors.
    source : str
        The file (or ``"<dict>"``).
    """

    name: str
    paradigm: str
    generation: dict = field(default_factory=dict)
    sites: tuple = ("resid_post",)
    axes: dict = field(default_factory=dict)
    steps: tuple = STEPS
    analysis: dict = field(default_factory=dict)
    resources: dict = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0})
    group: dict = field(default_factory=dict)
    description: str = ""
    source: str = "<dict>"
    base_dir: str = "."

    def cells(self):
        """Every combination of the axes, in file order, with unique BIDS labels.

        Returns
        -------
        list of Cell
        """
        names = list(self.axes)
        combos = list(itertools.product(*(self.axes[a] for a in names))) if names else [()]
        varying = [a for a in names if len(self.axes[a]) > 1]
        texts, params = [], []
        for combo in combos:
            p = dict(zip(names, combo))
            shown = varying or names[:1]
            text = "".join(f"{a}{_value_label(p[a])}" for a in shown) if shown else "cell"
            texts.append(text)
            params.append(p)
        labels = check_unique_labels(texts, label=lambda s: bids_label(s) or "cell",
                                     what="cell")
        return [Cell(labels[t], p, i) for i, (t, p) in enumerate(zip(texts, params))]

    def to_dict(self):
        """The canonical form (what ``sweep.json`` in the output folder holds)."""
        return {"schema_version": SCHEMA_VERSION, "name": self.name,
                "description": self.description, "paradigm": self.paradigm,
                "generation": dict(self.generation), "sites": list(self.sites),
                "axes": {k: list(v) for k, v in self.axes.items()}, "steps": list(self.steps),
                "analysis": dict(self.analysis), "resources": dict(self.resources),
                "group": {k: list(v) for k, v in self.group.items()}, "source": self.source,
                "base_dir": self.base_dir}


def _value_label(value):
    """A value as a label: local folders by their name, Hub ids as ``orgname``."""
    if value is None:
        return "none"
    text = str(value).rstrip("/")
    if text.startswith(("/", ".", "~")) or text.count("/") >= 2:
        text = Path(text).name
    return bids_label(text.replace("/", "_")) or "x"


def load_sweep(source):
    """Read and validate a sweep file (YAML) or dict.

    Parameters
    ----------
    source : str, Path or dict
        A sweep YAML file, or the same content as a dict.

    Returns
    -------
    Sweep

    Raises
    ------
    SweepError
        Listing every problem as ``file:line: field: message`` (unknown keys with a
        did-you-mean, wrong types, empty or repeated axis values, unknown steps).

    Examples
    --------
    >>> sweep = load_sweep({"schema_version": 1, "name": "seeds", "paradigm": "template",
    ...                     "axes": {"seed": [0, 1, 2]}})
    >>> [c.label for c in sweep.cells()]
    ['seed0', 'seed1', 'seed2']
    """
    if isinstance(source, dict):
        src = Source("<dict>", Path.cwd(), error=SweepError, kind="sweep")
        data = source
    else:
        path = Path(source)
        src, data = Source.from_yaml_file(path, str(source), error=SweepError, kind="sweep",
                                          expected="a mapping with schema_version, name, "
                                                   "paradigm and axes (see docs/sweeps.md)")
    return _Validator(src).run(data)


class _Validator:
    def __init__(self, src):
        self.src = src
        self.problems = []

    def err(self, path, message):
        self.problems.append(self.src.problem(path, message))

    def keys(self, mapping, path, allowed, required=()):
        for key in mapping:
            if key not in allowed:
                self.err(path + (key,), f"unknown key {key!r}. Allowed keys here: "
                                        f"{', '.join(allowed)}." + did_you_mean(key, allowed))
        for key in required:
            if key not in mapping:
                self.err(path + (key,), f"missing required key {key!r}.")

    def mapping(self, value, path, what="a mapping"):
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.err(path, f"expected {what}, found {_describe(value)}.")
            return {}
        return value

    def run(self, data):
        if not isinstance(data, dict):
            self.err((), f"expected a mapping with schema_version, name, paradigm and axes, "
                         f"found {_describe(data)}.")
            raise SweepError(self.problems)
        self.keys(data, (), _KEYS, required=("schema_version", "name", "paradigm"))
        version = data.get("schema_version")
        if "schema_version" in data and version != SCHEMA_VERSION:
            self.err(("schema_version",), f"expected {SCHEMA_VERSION}, found "
                                          f"{_describe(version)}.")
        name = data.get("name")
        if "name" in data and (not isinstance(name, str) or not bids_label(name)):
            self.err(("name",), f"expected a name with letters or digits, found "
                                f"{_describe(name)}.")
        paradigm = data.get("paradigm")
        if "paradigm" in data and (not isinstance(paradigm, str) or not paradigm.strip()):
            self.err(("paradigm",), "expected a library paradigm name or a paradigm file, "
                                    f"found {_describe(paradigm)}.")
        generation = self.mapping(data.get("generation"), ("generation",))
        self.keys(generation, ("generation",), _GENERATION)
        sites = data.get("sites", "resid_post")
        sites = [sites] if isinstance(sites, str) else sites
        if not isinstance(sites, list) or not sites or not all(isinstance(s, str) for s in sites):
            self.err(("sites",), f"expected a site or a list of sites, found {_describe(sites)}.")
        axes = self._axes(data.get("axes"))
        steps = data.get("steps", list(STEPS))
        if not isinstance(steps, list) or not steps:
            self.err(("steps",), f"expected a list of steps from {list(STEPS)}, found "
                                 f"{_describe(steps)}.")
            steps = list(STEPS)
        for i, step in enumerate(steps):
            if step not in STEPS:
                self.err(("steps", i), f"unknown step {step!r}; steps are {list(STEPS)}."
                         + did_you_mean(str(step), STEPS))
        if steps and "record" not in steps:
            self.err(("steps",), "every cell records: 'record' must be one of the steps.")
        analysis = self._analysis(self.mapping(data.get("analysis"), ("analysis",)))
        resources = self._resources(self.mapping(data.get("resources"), ("resources",)))
        group = self.mapping(data.get("group"), ("group",))
        self.keys(group, ("group",), _GROUP)
        regress = group.get("regress", [])
        if not isinstance(regress, list):
            self.err(("group", "regress"), f"expected a list of axes, found {_describe(regress)}.")
            regress = []
        for i, axis in enumerate(regress):
            if axis not in axes:
                self.err(("group", "regress", i), f"{axis!r} is not an axis of this sweep "
                         f"({list(axes)})." + did_you_mean(str(axis), list(axes)))
            elif not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                         for v in axes[axis]):
                self.err(("group", "regress", i), f"axis {axis!r} has non-numeric values; a "
                                                  "regressor needs numbers.")
        if self.problems:
            raise SweepError(self.problems)
        sweep = Sweep(name=name, paradigm=paradigm.strip(), generation=dict(generation),
                      sites=tuple(sites), axes=axes, steps=tuple(steps), analysis=analysis,
                      resources=resources, group={"regress": list(regress)},
                      description=str(data.get("description") or ""), source=self.src.name,
                      base_dir=str(self.src.base_dir))
        try:
            sweep.cells()
        except ValueError as exc:  # two values that share a label
            self.err(("axes",), str(exc))
            raise SweepError(self.problems) from None
        return sweep

    def _axes(self, axes):
        path = ("axes",)
        axes = self.mapping(axes, path, "a mapping of axis -> list of values")
        out = {}
        for axis, values in axes.items():
            p = path + (axis,)
            if axis not in AXES:
                self.err(p, f"unknown axis {axis!r}. Axes: "
                            + "; ".join(f"{k} ({v})" for k, v in AXES.items()) + "."
                            + did_you_mean(str(axis), AXES))
                continue
            if not isinstance(values, list) or not values:
                self.err(p, f"expected a non-empty list of values, found {_describe(values)}.")
                continue
            seen = {}
            for i, v in enumerate(values):
                if axis == "seed" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                    self.err(p + (i,), f"expected a whole number >= 0, found {_describe(v)}.")
                elif axis in ("model", "revision") and not (
                        isinstance(v, str) or (axis == "revision" and v is None)):
                    self.err(p + (i,), f"expected text, found {_describe(v)}.")
                key = repr(v)
                if key in seen:
                    self.err(p + (i,), f"{v!r} is already given at {format_path(p + (seen[key],))};"
                                       " every value of an axis must differ.")
                seen.setdefault(key, i)
            out[axis] = list(values)
        return out

    def _analysis(self, analysis):
        path = ("analysis",)
        self.keys(analysis, path, _ANALYSIS)
        out = {"inference": "prompt", "alpha": 0.05, "correction": None,
               "n_permutations": 1000, "random_state": 0}
        for key, value in analysis.items():
            p = path + (key,)
            if key == "inference" and value not in _INFERENCES:
                self.err(p, f"expected one of {list(_INFERENCES)}, found {_describe(value)}."
                         + did_you_mean(str(value), _INFERENCES))
            elif key == "correction" and value not in _CORRECTIONS:
                self.err(p, f"expected one of {list(_CORRECTIONS)}, found {_describe(value)}."
                         + did_you_mean(str(value), _CORRECTIONS))
            elif key == "alpha" and not (isinstance(value, (int, float))
                                         and not isinstance(value, bool)
                                         and math.isfinite(value) and 0 < value < 1):
                self.err(p, f"expected a number in (0, 1), found {_describe(value)}.")
            elif key in ("n_permutations", "random_state") and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0):
                self.err(p, f"expected a whole number >= 0, found {_describe(value)}.")
            out[key] = value
        if out["correction"] is None:
            out["correction"] = "maxt" if out["inference"] == "permutation" else "fdr"
        return out

    def _resources(self, resources):
        path = ("resources",)
        self.keys(resources, path, _RESOURCES)
        out = {"num_cpus": 1, "num_gpus": 0}
        for key, value in resources.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                self.err(path + (key,), f"expected a number >= 0, found {_describe(value)}.")
            out[key] = value
        return out


def _describe(value):
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
