"""The Paradigm object and load_paradigm."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from .._utils import atomic_write_text, did_you_mean
from .._utils.yamlsource import Source
from ._errors import ParadigmError, Problem
from ._schedule import build_schedule
from ._schema import validate_spec

#: how paradigm files are read: their errors and what an empty one should hold
_SOURCE = {"error": ParadigmError, "kind": "paradigm",
           "expected": "a mapping with schema_version, name, conditions and design (see "
                       "paradigms/template.yaml)"}

__all__ = ["Paradigm", "Condition", "Generation", "load_paradigm", "library_paradigms"]


@dataclass(frozen=True)
class Condition:
    """One condition of a paradigm.

    Attributes
    ----------
    name : str
        Condition name; it is the ``trial_type`` of its events.
    role : {"task", "control"}
    prompts : tuple of str
        Every prompt of the condition, in file order (prompt ids number them from 1).
    answers : tuple of str or None
        Gold answers, one per prompt, for behavioural scoring.
    description : str
    """

    name: str
    role: str
    prompts: tuple
    answers: tuple | None = None
    description: str = ""


@dataclass(frozen=True)
class Generation:
    """Generation settings (Hugging Face ``generate`` names where they exist).

    Attributes
    ----------
    max_new_tokens : int
        New tokens per prompt (0: no generation, for prompt-token frames).
    do_sample : bool
        False: greedy decoding. True: sampling with ``temperature`` and ``top_p``.
    temperature, top_p : float
    seed : int
        Seed for sampling.
    stop : tuple of str
        Generation of a prompt ends at the first of these strings (or EOS).
    chat_template : bool
        Wrap each prompt in the tokenizer's chat template (instruct models).
    """

    max_new_tokens: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple = field(default_factory=tuple)
    chat_template: bool = False


def _library_dir():
    """The repository's ``paradigms/`` folder (present in a source checkout), or None."""
    candidate = Path(__file__).resolve().parents[2] / "paradigms"
    if (candidate / "template.yaml").is_file():
        return candidate
    return None


def library_paradigms():
    """Names of the paradigms shipped in the repository's ``paradigms/`` folder.

    Returns
    -------
    dict
        ``{name: path}`` for every ``paradigms/*.yaml`` (empty when the folder is
        not found, e.g. in an installed wheel).

    Examples
    --------
    >>> from llmfmri.paradigm import library_paradigms
    >>> "functional_networks" in library_paradigms()  # doctest: +SKIP
    True
    """
    folder = _library_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


class Paradigm:
    """A validated experiment: conditions, design, runs, generation and frames.

    Build one with :func:`load_paradigm` (from a YAML file or a dict). Two
    paradigms are equal when their canonical dicts (:meth:`to_dict`) are equal.

    Attributes
    ----------
    name : str
        BIDS label (letters and digits), used as ``task-<name>``.
    description : str
    path : pathlib.Path or None
        The YAML file it was read from.
    conditions : dict of str to Condition
    design_type : {"block", "event"}
    design : dict
        Canonical design settings (see ``docs/paradigms.md``).
    n_runs : int
    split : {"disjoint", "reuse"}
    generation : Generation
    frames : {"generated", "prompt", "both", "pooled_last", "pooled_mean"}
    context : {"independent", "continuous"}
    seed : int
        Seed of the schedule.

    Examples
    --------
    >>> from llmfmri.paradigm import load_paradigm
    >>> p = load_paradigm({"schema_version": 1, "name": "demo",
    ...     "conditions": {"control": {"role": "control", "prompts": ["Tea is", "Rain is"]},
    ...                    "maths": {"role": "task", "prompts": ["2 + 2 =", "3 + 5 ="]}},
    ...     "design": {"type": "block", "sequence": ["control", "maths"], "prompts_per_block": 1},
    ...     "runs": 2, "generation": {"max_new_tokens": 4}})
    >>> p
    <Paradigm 'demo': block design, 2 conditions, 2 runs, frames 'generated'>
    >>> p.schedule()[["run", "block", "trial_type", "prompt_id"]]
       run  block trial_type    prompt_id
    0    1      0    control  control-001
    1    1      1      maths    maths-002
    2    2      0    control  control-002
    3    2      1      maths    maths-001
    """

    def __init__(self, spec, *, base_dir=None):
        if isinstance(spec, Paradigm):
            spec = spec.to_dict()
        src = Source("<dict>", Path.cwd() if base_dir is None else Path(base_dir), **_SOURCE)
        self._setup(validate_spec(copy.deepcopy(spec), src), None, src)

    @classmethod
    def _from_yaml(cls, path, name=None):
        src, data = Source.from_yaml_file(path, name, **_SOURCE)
        self = cls.__new__(cls)
        self._setup(validate_spec(data, src), Path(path), src)
        return self

    def _setup(self, canonical, path, src):
        self._spec = canonical
        self.path = path
        self.schema_version = canonical["schema_version"]
        self.name = canonical["name"]
        self.description = canonical["description"]
        self.conditions = {
            c: Condition(c, v["role"], tuple(v["prompts"]),
                         None if v["answers"] is None else tuple(v["answers"]), v["description"])
            for c, v in canonical["conditions"].items()
        }
        self.design = copy.deepcopy(canonical["design"])
        self.design_type = canonical["design"]["type"]
        self.n_runs = canonical["runs"]["n"]
        self.split = canonical["runs"]["split"]
        g = canonical["generation"]
        self.generation = Generation(g["max_new_tokens"], g["do_sample"], g["temperature"],
                                     g["top_p"], g["seed"], tuple(g["stop"]), g["chat_template"])
        self.frames = canonical["frames"]
        self.context = canonical["context"]
        self.seed = canonical["seed"]
        try:  # an impossible ordering constraint surfaces now, not at record time
            self._schedule = {self.seed: build_schedule(canonical, self.seed)}
        except ParadigmError as err:
            raise ParadigmError([
                Problem(src.name, src.line_of(("design", "max_consecutive")), p.field, p.message)
                for p in err.problems]) from None

    # -------------------------------------------------------------- views
    def to_dict(self):
        """Canonical plain dict: every default filled in, every prompt inline.

        Returns
        -------
        dict
            Loading it with :func:`load_paradigm` gives an equal paradigm.
        """
        return copy.deepcopy(self._spec)

    @property
    def sha256(self):
        """Hex SHA-256 of the canonical dict (JSON, sorted keys): the paradigm's provenance."""
        blob = json.dumps(self._spec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def task_conditions(self):
        """Names of the conditions with role ``"task"``, in file order."""
        return [c for c, v in self.conditions.items() if v.role == "task"]

    @property
    def control_conditions(self):
        """Names of the conditions with role ``"control"``, in file order."""
        return [c for c, v in self.conditions.items() if v.role == "control"]

    def __eq__(self, other):
        if not isinstance(other, Paradigm):
            return NotImplemented
        return self._spec == other._spec

    def __hash__(self):
        return hash(self.sha256)

    def __repr__(self):
        return (f"<Paradigm {self.name!r}: {self.design_type} design, "
                f"{len(self.conditions)} conditions, {self.n_runs} run"
                f"{'s' if self.n_runs != 1 else ''}, frames {self.frames!r}>")

    # ----------------------------------------------------------- schedule
    def schedule(self, seed=None):
        """The ordered prompts of every run.

        The block sequence (or the trial counts of an event design) is fixed by
        the file; the seed decides which prompts go to which run and block, the
        task order when ``task_order: shuffled``, and the trial order of event
        designs. The same file and seed always give the same schedule.

        Parameters
        ----------
        seed : int or None
            Overrides the paradigm's ``seed``.

        Returns
        -------
        schedule : pandas.DataFrame
            One row per presented prompt, in presentation order, with columns
            ``run`` (1-based), ``trial`` (0-based within the run), ``block``
            (0-based within the run; each trial is its own block in event
            designs), ``trial_type`` (condition), ``role``, ``prompt_id``
            (``<condition>-<NNN>``, numbered from 1 in file order), ``prompt``
            and ``answer`` (None without gold answers).

        Examples
        --------
        >>> from llmfmri.paradigm import load_paradigm
        >>> p = load_paradigm({"schema_version": 1, "name": "demo",
        ...     "conditions": {"a": {"role": "task", "prompts": ["x y", "y z", "z w"]},
        ...                    "b": {"role": "control", "prompts": ["u v", "v w", "w x"]}},
        ...     "design": {"type": "event"}, "frames": "pooled_last"})
        >>> p.schedule(seed=1)["trial_type"].tolist()
        ['a', 'b', 'b', 'a', 'a', 'b']
        """
        seed = self.seed if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0 or None, but got {seed!r}.")
        if seed not in self._schedule:
            self._schedule[seed] = build_schedule(self._spec, seed)
        return self._schedule[seed].copy()

    def expected_frames(self, seed=None):
        """Frames each run will have, and how sure that number is.

        Returns
        -------
        pandas.DataFrame
            One row per run: ``run``, ``n_prompts``, ``generated`` (upper bound:
            prompts × ``max_new_tokens``; 0 when generated tokens are not frames),
            ``prompt`` (estimate: characters / 4 per prompt, at least 1; 0 when
            prompt tokens are not frames; the tokenizer and a chat template change
            it), ``frames`` (the total) and ``kind`` (``"exact"``, ``"upper bound"``,
            ``"estimate"`` or ``"upper bound + estimate"``).
        """
        sched = self.schedule(seed)
        est = sched["prompt"].map(_estimate_tokens)
        rows = []
        for run, part in sched.groupby("run", sort=True):
            n = len(part)
            gen = n * self.generation.max_new_tokens if self.frames in ("generated", "both") else 0
            prm = int(est[part.index].sum()) if self.frames in ("prompt", "both") else 0
            if self.frames.startswith("pooled"):
                total, kind = n, "exact"
            else:
                total = gen + prm
                kind = {"generated": "upper bound", "prompt": "estimate",
                        "both": "upper bound + estimate"}[self.frames]
            rows.append((int(run), n, gen, prm, total, kind))
        return pd.DataFrame(rows, columns=["run", "n_prompts", "generated", "prompt", "frames",
                                           "kind"])

    def summary(self):
        """What ``llmfmri validate`` prints: conditions, prompts per run, blocks and frames.

        Returns
        -------
        str
        """
        from ._summary import render_summary

        return render_summary(self)

    # --------------------------------------------------------------- save
    def save(self, path, *, overwrite=False):
        """Write the canonical paradigm as YAML (prompts inline), atomically.

        Parameters
        ----------
        path : str or Path
        overwrite : bool
            Replace an existing file; refused by default.

        Returns
        -------
        pathlib.Path
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
        from .._version import __version__

        header = (f"# Paradigm {self.name!r} in canonical form (every default filled in, prompts "
                  f"inline),\n# written by llmfmri {__version__}"
                  + (f" from {self.path.name}" if self.path else "")
                  + f". sha256 {self.sha256}\n")
        body = yaml.dump(self._spec, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                         width=100, default_flow_style=False)
        atomic_write_text(path, header + body, overwrite=overwrite)
        return path


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes multi-line text (code, stories) as literal blocks."""


def _represent_str(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _estimate_tokens(text):
    return max(1, round(len(text) / 4))


def load_paradigm(source, *, base_dir=None):
    """Load and validate a paradigm.

    Parameters
    ----------
    source : str, Path, dict or Paradigm
        A YAML file; a dict with the same content (relative ``prompts_file``
        paths are then resolved against ``base_dir``, default the current
        folder); or the name of a paradigm in the repository's ``paradigms/``
        folder such as ``"functional_networks"``.
    base_dir : str or Path, optional
        Folder for relative file names in a dict source.

    Returns
    -------
    Paradigm

    Raises
    ------
    ParadigmError
        With ``file:line: field.path: what was expected, what was found`` for
        every problem found.

    Examples
    --------
    >>> from llmfmri.paradigm import load_paradigm
    >>> p = load_paradigm({"schema_version": 1, "name": "tiny",
    ...     "conditions": {"words": {"role": "task", "prompts": ["The cat sat.", "A dog ran."]},
    ...                    "nonwords": {"role": "control", "prompts": ["Bla fep.", "Tor gim."]}},
    ...     "design": {"type": "event"}, "frames": "pooled_last"})
    >>> p.design_type, p.n_runs, sorted(p.conditions)
    ('event', 1, ['nonwords', 'words'])
    """
    if isinstance(source, Paradigm):
        return source
    if isinstance(source, dict):
        return Paradigm(source, base_dir=base_dir)
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source must be a file path, a dict or a Paradigm, but got "
                        f"{type(source).__name__}.")
    path = Path(source).expanduser()
    if not path.exists() and isinstance(source, str) and "/" not in source and "\\" not in source:
        library = library_paradigms()
        stem = Path(source).stem
        if stem in library:
            return Paradigm._from_yaml(library[stem], str(library[stem]))
        if path.suffix == "":
            raise ParadigmError(Problem(str(source), None, "",
                                        f"no such file, and no paradigm named {stem!r} in the "
                                        f"library ({', '.join(library) or 'not found'})."
                                        + did_you_mean(stem, library)))
    if not path.exists():
        hint = ""
        if path.parent.is_dir():
            hint = did_you_mean(path.name, sorted(p.name for p in path.parent.iterdir()))
        raise ParadigmError(Problem(str(source), None, "",
                                    f"paradigm file not found (looked for {path.resolve()})."
                                    + hint))
    return Paradigm._from_yaml(path, str(source))
