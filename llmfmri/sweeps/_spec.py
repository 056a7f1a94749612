"""Sweep files: a paradigm and the axes to cross, validated with file/line/field errors."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._utils import did_you_mean
from .._utils.yamlsource import Source, format_path
from ..exceptions import SweepError
from ..io import bids_label, check_unique_labels

__all__ = ["Sweep", "Cell", "load_sweep", "AXES", "STEPS", "DEFAULT_STEPS", "LESION_KINDS",
           "SCHEMA_VERSION", "lesion_kind", "lesion_label"]

SCHEMA_VERSION = 1
#: the axes a sweep may cross, and what each value is
AXES = {
    "model": "a Hugging Face id, a local model folder (relative to the sweep file) or 'default'",
    "revision": "a Hub revision (branch, tag or commit) of the model, or null",
    "seed": "the generation seed of the paradigm (sampling needs generation.do_sample: true)",
    "lesion": "none (intact) or a mapping with one of units: FILE, weights: FILE, "
              "dimension: [LAYER, DIM], truncation: [MATRIX, LAYER, RHO] (and strategy, factor, "
              "sigma, reference, label, controls, random_state); controls: N adds N control cells",
    "truncation_matrix": "the matrix of a low-rank truncation (q k v o mlp_gate mlp_in mlp_out), "
                         "with truncation_layer and rho",
    "truncation_layer": "the layer of the truncated matrix (from 0), with truncation_matrix "
                        "and rho",
    "rho": "the fraction of the matrix's rank kept, in [0, 1] (1: intact), with "
           "truncation_matrix and truncation_layer",
}
#: what a cell can run: the recording always, then the main job's analysis, then behaviour
STEPS = ("record", "networks", "behaviour")
#: the steps of a sweep file without ``steps:``
DEFAULT_STEPS = ("record", "networks")
#: what a value of the ``lesion`` axis lesions (exactly one per value)
LESION_KINDS = ("units", "weights", "dimension", "truncation")
_TRUNCATION_AXES = ("truncation_matrix", "truncation_layer", "rho")
_LESION_KEYS = LESION_KINDS + ("strategy", "factor", "sigma", "reference", "label", "controls",
                               "random_state")
_UNIT_STRATEGIES = ("zero", "mean", "noise", "scale", "resample")  # llmfmri.lesions.STRATEGIES
_WEIGHT_STRATEGIES = ("zero", "scale", "noise")  # llmfmri.lesions.WEIGHT_STRATEGIES
_NEEDS_REFERENCE = ("mean", "noise", "resample")
_MATRIX_KINDS = ("q", "k", "v", "o", "mlp_gate", "mlp_in", "mlp_out")  # lesions.MATRIX_KINDS
_KEYS = ("schema_version", "name", "description", "paradigm", "generation", "sites", "axes",
         "steps", "analysis", "resources", "group", "behaviour")
_GENERATION = ("max_new_tokens", "do_sample", "temperature", "top_p", "stop", "chat_template")
_ANALYSIS = ("inference", "alpha", "correction", "n_permutations", "random_state")
_RESOURCES = ("num_cpus", "num_gpus")
_GROUP = ("regress", "paired")
_PAIRED = ("lesion",)
_BEHAVIOUR = ("texts", "tasks", "max_length", "batch_size")
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
        Axis -> value. A ``lesion`` axis adds ``lesion_role`` (``"intact"``,
        ``"lesion"`` or ``"control"``) and ``draw`` (0 for the lesion and the
        intact model, 1..N for the N control draws); ``lesion`` is the value's
        canonical mapping (or ``"none"``).
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
        ``record`` and any of ``networks`` and ``behaviour`` (:data:`STEPS`).
    analysis : dict
        Options of the networks step (``inference``, ``alpha``, ``correction``,
        ``n_permutations``, ``random_state``).
    resources : dict
        ``num_cpus`` and ``num_gpus`` of each cell (Ray places cells by them).
    group : dict
        Group analyses over cells: ``regress`` lists axes used as regressors;
        ``paired: "lesion"`` (when given) pairs each lesioned cell with its intact cell.
    behaviour : dict
        Options of the behaviour step: ``texts`` (sources of :func:`llmfmri.lesions.load_texts`),
        ``tasks`` (gold-answer paradigms), ``max_length``, ``batch_size`` (empty without
        the step).
    source : str
        The file (or ``"<dict>"``).
    """

    name: str
    paradigm: str
    generation: dict = field(default_factory=dict)
    sites: tuple = ("resid_post",)
    axes: dict = field(default_factory=dict)
    steps: tuple = DEFAULT_STEPS
    analysis: dict = field(default_factory=dict)
    resources: dict = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0})
    group: dict = field(default_factory=dict)
    behaviour: dict = field(default_factory=dict)
    description: str = ""
    source: str = "<dict>"
    base_dir: str = "."

    def cells(self):
        """Every combination of the axes, in file order, with unique BIDS labels.

        A value of the ``lesion`` axis with ``controls: N`` is N + 1 entries of
        the axis: the lesion (``lesion<label>``) and its control draws
        (``lesion<label>control<k>``, k = 1..N).

        Returns
        -------
        list of Cell
        """
        names = list(self.axes)
        entries = [_axis_entries(a, self.axes[a]) for a in names]
        combos = list(itertools.product(*entries)) if names else [()]
        varying = [i for i, e in enumerate(entries) if len(e) > 1]
        shown = varying or ([0] if names else [])
        texts, params = [], []
        for combo in combos:
            p = {}
            for values, _ in combo:
                p.update(values)
            text = "".join(combo[i][1] for i in shown) if shown else "cell"
            texts.append(text)
            params.append(p)
        labels = check_unique_labels(texts, label=lambda s: bids_label(s) or "cell",
                                     what="cell")
        return [Cell(labels[t], p, i) for i, (t, p) in enumerate(zip(texts, params))]

    def to_dict(self):
        """The canonical form (what ``sweep.json`` in the output folder holds)."""
        out = {"schema_version": SCHEMA_VERSION, "name": self.name,
               "description": self.description, "paradigm": self.paradigm,
               "generation": dict(self.generation), "sites": list(self.sites),
               "axes": {k: list(v) for k, v in self.axes.items()}, "steps": list(self.steps),
               "analysis": dict(self.analysis), "resources": dict(self.resources),
               "group": {k: list(v) if isinstance(v, (list, tuple)) else v
                         for k, v in self.group.items()},
               "source": self.source, "base_dir": self.base_dir}
        if self.behaviour:  # only with the behaviour step: older sweep folders stay comparable
            out["behaviour"] = {k: list(v) if isinstance(v, (list, tuple)) else v
                                for k, v in self.behaviour.items()}
        return out


def lesion_kind(value):
    """What a value of the ``lesion`` axis lesions: one of :data:`LESION_KINDS`, or ``"none"``."""
    if not isinstance(value, dict):
        return "none"
    return next((k for k in LESION_KINDS if k in value), "none")


def lesion_label(value):
    """The label of a value of the ``lesion`` axis (``"none"`` for the intact model)."""
    return value.get("label", "lesion") if isinstance(value, dict) else "none"


def _axis_entries(axis, values):
    """``[(params, label text)]``: one entry per value (a lesion with controls: N + 1)."""
    if axis != "lesion":
        return [({axis: v}, f"{axis}{_value_label(v)}") for v in values]
    out = []
    for v in values:
        if not isinstance(v, dict):
            out.append(({"lesion": "none", "lesion_role": "intact", "draw": 0}, "lesionnone"))
            continue
        label = lesion_label(v)
        out.append(({"lesion": dict(v), "lesion_role": "lesion", "draw": 0}, f"lesion{label}"))
        for k in range(1, int(v.get("controls", 0)) + 1):
            out.append(({"lesion": dict(v), "lesion_role": "control", "draw": k},
                        f"lesion{label}control{k}"))
    return out


def _default_lesion_label(kind, value):
    """``core`` for ``region-core.json``, ``archeology`` for a network of that contrast..."""
    if kind == "dimension":
        return f"L{value[0]}d{value[1]}"
    if kind == "truncation":
        return bids_label(f"{value[0]}L{value[1]}rho{value[2]:g}".replace(".", "p")) or "trunc"
    name = Path(str(value)).name
    for suffix in ("_units.tsv", "_mask.nii.gz", ".nii.gz", ".nii", ".tsv", ".json",
                   ".safetensors"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    entity = re.search(r"(?:^|_)contrast-([A-Za-z0-9]+)", name)
    if entity:
        name = entity.group(1)
    elif kind == "weights" and name.startswith("region-"):
        name = name[len("region-"):]
    return bids_label(name.replace("/", "_")) or kind


def _value_label(value):
    """A value as a label: local folders by their name, Hub ids as ``orgname``."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return bids_label(f"{value:g}".replace(".", "p")) or "x"
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
    >>> from llmfmri.sweeps import load_sweep
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
        steps = data.get("steps", list(DEFAULT_STEPS))
        if not isinstance(steps, list) or not steps:
            self.err(("steps",), f"expected a list of steps from {list(STEPS)}, found "
                                 f"{_describe(steps)}.")
            steps = list(DEFAULT_STEPS)
        for i, step in enumerate(steps):
            if step not in STEPS:
                self.err(("steps", i), f"unknown step {step!r}; steps are {list(STEPS)}."
                         + did_you_mean(str(step), STEPS))
        if steps and "record" not in steps:
            self.err(("steps",), "every cell records: 'record' must be one of the steps.")
        analysis = self._analysis(self.mapping(data.get("analysis"), ("analysis",)))
        resources = self._resources(self.mapping(data.get("resources"), ("resources",)))
        behaviour = self._behaviour(data, steps)
        group = self._group(self.mapping(data.get("group"), ("group",)), axes, steps)
        if self.problems:
            raise SweepError(self.problems)
        sweep = Sweep(name=name, paradigm=paradigm.strip(), generation=dict(generation),
                      sites=tuple(sites), axes=axes, steps=tuple(steps), analysis=analysis,
                      resources=resources, group=group, behaviour=behaviour,
                      description=str(data.get("description") or ""), source=self.src.name,
                      base_dir=str(self.src.base_dir))
        try:
            sweep.cells()
        except ValueError as exc:  # two values that share a label
            self.err(("axes",), str(exc))
            raise SweepError(self.problems) from None
        return sweep

    def _group(self, group, axes, steps):
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
        out = {"regress": list(regress)}
        if group.get("paired") is not None:
            paired = group["paired"]
            p = ("group", "paired")
            if paired not in _PAIRED:
                self.err(p, f"expected one of {list(_PAIRED)} (pair each lesioned cell with "
                            f"its intact cell), found {_describe(paired)}."
                         + did_you_mean(str(paired), _PAIRED))
            elif "lesion" not in axes:
                self.err(p, "paired: lesion needs a lesion axis (axes.lesion) with the value "
                            "none (the intact cells the lesioned cells are paired with).")
            elif "none" not in axes["lesion"]:
                self.err(p, "paired: lesion pairs each lesioned cell with the intact cell of "
                            "the same other axes, but axes.lesion has no value none; add none "
                            "to axes.lesion.")
            elif "networks" not in steps:
                self.err(p, "paired: lesion tests the task maps of the networks step, but "
                            "'networks' is not one of the steps; add it (e.g. [record, "
                            "networks, behaviour]). Behaviour against the control draws needs "
                            "no pairing.")
            else:
                out["paired"] = paired
        return out

    def _behaviour(self, data, steps):
        path = ("behaviour",)
        given = data.get("behaviour")
        if "behaviour" not in steps:
            if given is not None:
                self.err(path, "behaviour options are given, but 'behaviour' is not one of the "
                               "steps; add it to steps (e.g. [record, behaviour]) or remove "
                               "this block.")
            return {}
        behaviour = self.mapping(given, path)
        self.keys(behaviour, path, _BEHAVIOUR)
        out = {"texts": ["domains"], "tasks": [], "max_length": None, "batch_size": 8}
        for key in ("texts", "tasks"):
            value = behaviour.get(key, out[key])
            value = [value] if isinstance(value, str) else value
            if value is None:
                value = []
            if not isinstance(value, list) or (key == "texts" and not value):
                self.err(path + (key,), f"expected a list of "
                         f"{'text sources' if key == 'texts' else 'paradigms'}, found "
                         f"{_describe(value)}.")
                continue
            for i, item in enumerate(value):
                self._source(item, path + (key, i), texts=key == "texts")
            out[key] = list(value)
        for key, low in (("max_length", 2), ("batch_size", 1)):
            if key not in behaviour or (key == "max_length" and behaviour[key] is None):
                continue
            value = behaviour[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                self.err(path + (key,), f"expected a whole number >= {low}, found "
                                        f"{_describe(value)}.")
            out[key] = value
        return out

    def _source(self, item, path, *, texts):
        """A text source (paradigm, .txt, .tsv) or a gold-answer paradigm (name or file)."""
        from ..paradigm import library_paradigms

        if not isinstance(item, str) or not item.strip():
            self.err(path, f"expected a paradigm name or a file, found {_describe(item)}.")
            return
        suffix = Path(item).suffix
        if suffix in (".txt", ".tsv") and not texts:
            self.err(path, f"a task is a paradigm with gold answers (a name or a .yaml file), "
                           f"found the text file {item!r}; list text files under texts.")
        elif suffix in (".txt", ".tsv", ".yaml", ".yml"):
            target = self._file(item, path, "file")
            if target is not None and not texts:
                self._gold_answers(target, item, path)
        else:
            library = library_paradigms()
            if library and item not in library:
                what = "a text source: a library paradigm, a .txt or a .tsv file" if texts \
                    else "a library paradigm or a paradigm file"
                self.err(path, f"{item!r} is not {what}. Library paradigms: "
                               f"{', '.join(library)}." + did_you_mean(item, library))
            elif library and not texts:
                self._gold_answers(library[item], item, path)

    def _gold_answers(self, source, item, path):
        """A task of the behaviour step must have gold answers to score."""
        from ..paradigm import load_paradigm

        try:
            paradigm = load_paradigm(source)
        except ValueError as exc:  # an invalid paradigm file: its own file:line problems
            self.err(path, f"the paradigm {item!r} is not valid: {exc}")
            return
        if not any(getattr(c, "answers", None) for c in paradigm.conditions.values()):
            self.err(path, f"the paradigm {item!r} has no gold answers (no condition has "
                           "answers), so there is no accuracy to score; list it under texts "
                           "for perplexity, or choose a paradigm with answers (template, "
                           "multiple_demand, theory_of_mind).")

    def _file(self, value, path, what):
        """The file ``value`` resolved against the sweep's folder; a problem when missing."""
        target = Path(value).expanduser()
        if not target.is_absolute():
            target = self.src.base_dir / target
        if not target.exists():
            self.err(path, f"{what} {value!r} does not exist (looked for {target}; files are "
                           "relative to the sweep file's folder).")
            return None
        return target

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
            seen, labels = {}, {}
            kept = []
            for i, v in enumerate(values):
                if axis == "lesion":
                    v = self._lesion(v, p + (i,))
                    if v is None:
                        continue
                    label = lesion_label(v)
                    if label in labels and repr(v) not in seen:
                        self.err(p + (i,), f"the label {label!r} is already used by "
                                           f"{format_path(p + (labels[label],))}; give this "
                                           "value its own label: (letters and digits).")
                    labels.setdefault(label, i)
                elif axis in ("seed", "truncation_layer") and (
                        isinstance(v, bool) or not isinstance(v, int) or v < 0):
                    self.err(p + (i,), f"expected a whole number >= 0, found {_describe(v)}.")
                elif axis in ("model", "revision") and not (
                        isinstance(v, str) or (axis == "revision" and v is None)):
                    self.err(p + (i,), f"expected text, found {_describe(v)}.")
                elif axis == "truncation_matrix" and v not in _MATRIX_KINDS:
                    self.err(p + (i,), f"expected one of {list(_MATRIX_KINDS)}, found "
                                       f"{_describe(v)}." + did_you_mean(str(v), _MATRIX_KINDS))
                elif axis == "rho" and not _is_fraction(v):
                    self.err(p + (i,), f"expected a number in [0, 1] (the fraction of the rank "
                                       f"kept), found {_describe(v)}.")
                key = repr(v)
                if key in seen:
                    self.err(p + (i,), f"{v!r} is already given at {format_path(p + (seen[key],))};"
                                       " every value of an axis must differ.")
                seen.setdefault(key, i)
                kept.append(v)
            out[axis] = kept
        given = [a for a in _TRUNCATION_AXES if a in out]
        if given and len(given) < len(_TRUNCATION_AXES):
            missing = [a for a in _TRUNCATION_AXES if a not in out]
            self.err(path + (given[0],), f"a truncation grid needs all of "
                                         f"{', '.join(_TRUNCATION_AXES)}, but {', '.join(missing)} "
                                         f"{'is' if len(missing) == 1 else 'are'} missing; add "
                                         f"{' and '.join(f'axes.{m}' for m in missing)} (one "
                                         "value each for a fixed matrix or layer).")
        return out

    def _lesion(self, value, path):
        """Validate one value of the lesion axis; its canonical mapping, ``"none"``, or None."""
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return "none"
        kinds_text = ("units: FILE, weights: FILE, dimension: [LAYER, DIM] or truncation: "
                      "[MATRIX, LAYER, RHO]")
        if not isinstance(value, dict):
            self.err(path, f"expected none (intact) or a mapping with one of {kinds_text}, "
                           f"found {_describe(value)}.")
            return None
        n_problems = len(self.problems)
        self.keys(value, path, _LESION_KEYS)
        kinds = [k for k in LESION_KINDS if k in value]
        if not kinds:
            self.err(path, f"a lesion needs one of {kinds_text}; found none of them.")
            return None
        if len(kinds) > 1:
            self.err(path + (kinds[1],), f"a lesion is one of units, weights, dimension or "
                                         f"truncation, but this value gives "
                                         f"{' and '.join(kinds)}; make each its own value of "
                                         "the lesion axis.")
            return None
        kind = kinds[0]
        target = value[kind]
        tp = path + (kind,)
        if kind in ("units", "weights"):
            if not isinstance(target, str) or not target.strip():
                self.err(tp, f"expected a file, found {_describe(target)}.")
            elif kind == "units":
                if not target.endswith((".tsv", ".nii.gz", ".nii")):
                    self.err(tp, f"expected a saved network: its _units.tsv or _mask.nii.gz "
                                 f"(written by the networks step, llmfmri run), found "
                                 f"{target!r}.")
                else:
                    self._file(target, tp, "network file")
            else:
                stem = target
                for suffix in (".json", ".safetensors"):
                    stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
                for f in (stem + ".json", stem + ".safetensors"):
                    if self._file(f, tp, "weight region file") is None:
                        break
        elif kind == "dimension":
            if not (isinstance(target, list) and len(target) == 2
                    and all(_is_count(x) for x in target)):
                self.err(tp, f"expected [LAYER, DIM], two whole numbers >= 0 (e.g. [1, 409]), "
                             f"found {_describe(target)}.")
        else:
            ok = isinstance(target, list) and len(target) == 3
            if not ok:
                self.err(tp, f"expected [MATRIX, LAYER, RHO] (e.g. [mlp_in, 27, 0.01]), found "
                             f"{_describe(target)}.")
            else:
                matrix, layer, rho = target
                if matrix not in _MATRIX_KINDS:
                    self.err(tp + (0,), f"expected a matrix from {list(_MATRIX_KINDS)}, found "
                                        f"{_describe(matrix)}."
                             + did_you_mean(str(matrix), _MATRIX_KINDS))
                if not _is_count(layer):
                    self.err(tp + (1,), f"expected a layer (a whole number >= 0), found "
                                        f"{_describe(layer)}.")
                if not _is_fraction(rho):
                    self.err(tp + (2,), f"expected rho, a number in [0, 1], found "
                                        f"{_describe(rho)}.")
        out = {kind: list(target) if isinstance(target, list) else target}
        # what the lesion does to its units or weights
        allowed = {"units": _UNIT_STRATEGIES, "truncation": ()}.get(kind, _WEIGHT_STRATEGIES)
        strategy = value.get("strategy", "zero")
        if kind == "truncation":
            for key in ("strategy", "factor", "sigma"):
                if key in value:
                    self.err(path + (key,), f"a truncation replaces the matrix by its low-rank "
                                            f"approximation and takes no {key}; remove it.")
        elif strategy not in allowed:
            self.err(path + ("strategy",), f"a {kind} lesion's strategy is one of "
                                           f"{list(allowed)}, found {_describe(strategy)}."
                     + did_you_mean(str(strategy), allowed))
        else:
            out["strategy"] = strategy
        if "factor" in value and kind != "truncation":
            factor = value["factor"]
            if strategy != "scale":
                self.err(path + ("factor",), f"factor goes with strategy: scale, but the "
                                             f"strategy is {strategy!r}; remove it or set "
                                             "strategy: scale.")
            elif not _is_number(factor):
                self.err(path + ("factor",), f"expected a number, found {_describe(factor)}.")
            out["factor"] = factor
        elif strategy == "scale":
            self.err(path + ("strategy",), "strategy: scale needs factor: (e.g. factor: 4).")
        if "sigma" in value and kind != "truncation":
            sigma = value["sigma"]
            if strategy != "noise":
                self.err(path + ("sigma",), f"sigma goes with strategy: noise, but the "
                                            f"strategy is {strategy!r}; remove it.")
            elif not _is_number(sigma) or sigma <= 0:
                self.err(path + ("sigma",), f"expected a number > 0, found {_describe(sigma)}.")
            out["sigma"] = sigma
        needs_reference = kind == "units" and strategy in _NEEDS_REFERENCE
        if "reference" in value:
            ref = value["reference"]
            if not needs_reference:
                self.err(path + ("reference",), f"reference (a recording) goes with a units "
                                                f"lesion of strategy mean, noise or resample; "
                                                f"this is a {kind} lesion with strategy "
                                                f"{strategy!r}.")
            elif not isinstance(ref, str):
                self.err(path + ("reference",), f"expected a recording folder, found "
                                                f"{_describe(ref)}.")
            else:
                self._file(ref, path + ("reference",), "reference recording")
            out["reference"] = ref
        elif needs_reference:
            self.err(path + ("strategy",), f"strategy: {strategy} needs reference: a recording "
                                           "folder of the same model holding the lesioned "
                                           "units (relative to the sweep file).")
        label = value.get("label")
        if label is None:
            ok = len(self.problems) == n_problems  # a default label from a valid value
            label = _default_lesion_label(kind, target) if ok else kind
        elif not isinstance(label, str) or not bids_label(label) or bids_label(label) != label:
            self.err(path + ("label",), f"expected a label of letters and digits, found "
                                        f"{_describe(label)}.")
        elif label == "none":
            self.err(path + ("label",), "'none' is the intact model's label; choose another.")
        out["label"] = label
        for key in ("controls", "random_state"):
            v = value.get(key, 0)
            if not _is_count(v):
                self.err(path + (key,), f"expected a whole number >= 0, found {_describe(v)}.")
            out[key] = v
        return out if len(self.problems) == n_problems else None

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


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_fraction(value):
    return _is_number(value) and 0 <= value <= 1
