"""Output names: BIDS entities for recordings, statistical maps, networks and tables.

Every file name that llmfmri writes is made here, so that one scheme holds for
the library, the main job and every command (nilearn's ``save_glm_to_bids``
vocabulary for maps):

- recording run: ``sub-<model>/func/sub-<model>_task-<t>_run-<k>_bold.zarr`` (with
  ``_events.tsv`` and ``_bold.json``);
- statistical map: ``[task-<t>_]contrast-<label>_stat-<z|t|F|p|effect|variance>_statmap.nii.gz``
  (``[task-<t>_]`` when the map comes from a recording's task);
- its unit table and sidecar: ``[task-<t>_]contrast-<label>_statmap.tsv`` and ``.json``;
- design matrix: ``[task-<t>_]run-<k>_design.tsv``;
- network: ``[task-<t>_]contrast-<label>_desc-<threshold>_mask.nii.gz`` and ``_units.tsv``;
- table: ``<name>.tsv`` (``networks.tsv``, ``overlap-dice.tsv``...).

Labels derived from user text (models, paradigms, contrasts, conditions) keep
letters and digits only, as BIDS requires; :func:`check_unique_labels` refuses
two different texts that would share a file.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..exceptions import OutputNameError

__all__ = [
    "bids_label",
    "contrast_label",
    "check_unique_labels",
    "RunPaths",
    "STAT_LABELS",
    "stat_label",
    "statmap_stem",
    "statmap_path",
    "design_path",
    "network_stem",
    "table_path",
]

#: output_type of a UnitMap -> the ``stat-`` entity of its file (``stat`` depends on t / F)
STAT_LABELS = {"z_score": "z", "p_value": "p", "effect_size": "effect",
               "effect_variance": "variance"}


def bids_label(text):
    """A BIDS-safe label (letters and digits only) for a model, paradigm or task name.

    The last path component of a model id is used (``org/name`` → ``name``).

    Examples
    --------
    >>> from llmfmri.io import bids_label
    >>> bids_label("HuggingFaceTB/SmolLM2-135M-Instruct")
    'SmolLM2135MInstruct'
    >>> bids_label("functional_networks")
    'functionalnetworks'
    """
    text = str(text).rstrip("/").split("/")[-1]
    label = re.sub(r"[^A-Za-z0-9]", "", text)
    return label or "model"


def contrast_label(expression):
    """A BIDS-safe label for a contrast expression (nilearn's camel case).

    ``"medical_imaging - control"`` becomes ``medicalImagingMinusControl``.

    Examples
    --------
    >>> from llmfmri.io import contrast_label
    >>> contrast_label("medical_imaging - control")
    'medicalImagingMinusControl'
    >>> contrast_label("a; b")
    'aAndB'
    """
    s = (str(expression).replace(";", " and ").replace("-", " minus ").replace("+", " plus ")
         .replace("*", " times ").replace("/", " over "))
    words = re.findall(r"[A-Za-z0-9]+", s)
    if not words:
        return "contrast"
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def check_unique_labels(texts, label=contrast_label, *, labels=None, what="contrast"):
    """Labels for ``texts``, refusing two different texts that map to one file name.

    Labels are compared without regard to case, since two names differing only
    in case are one file on macOS and Windows.

    Parameters
    ----------
    texts : iterable of str, or mapping of label -> text
        User texts (contrast expressions, condition names). A mapping gives the
        labels explicitly (they are checked as they are).
    label : callable, default=contrast_label
        How a text becomes a label.
    labels : list of (str or None), optional
        Explicit labels, one per text (None: derive it with ``label``).
    what : str
        What the texts are, for the message.

    Returns
    -------
    dict
        text -> label, in the order given (a text given twice keeps one entry).

    Raises
    ------
    OutputNameError
        When two different texts share a label, naming both and the fix.

    Examples
    --------
    >>> from llmfmri.io import check_unique_labels
    >>> check_unique_labels(["a - b", "a_b"])
    {'a - b': 'aMinusB', 'a_b': 'aB'}
    >>> check_unique_labels(["a_b - c", "aB - c"])
    Traceback (most recent call last):
    ...
    llmfmri.exceptions.OutputNameError: The contrasts 'a_b - c' and 'aB - c' would both be ...
    """
    if hasattr(texts, "items"):
        labels, texts = [str(lab) for lab in texts], [str(t) for t in texts.values()]
    texts = [str(t) for t in texts]
    if labels is None:
        labels = [None] * len(texts)
    if len(labels) != len(texts):
        raise ValueError(f"labels has {len(labels)} entries for {len(texts)} {what}s.")
    pairs = []
    for text, lab in zip(texts, labels):
        if lab is None:
            lab = label(text)
        elif not re.fullmatch(r"[A-Za-z0-9]+", str(lab)):
            raise OutputNameError(
                f"The {what} label {lab!r} must hold letters and digits only (a BIDS "
                f"label); e.g. {contrast_label(lab)!r}."
            )
        pairs.append((text, str(lab)))
    seen, out = {}, {}
    for text, lab in pairs:
        key = lab.lower()
        if key in seen and seen[key] != text:
            raise OutputNameError(
                f"The {what}s {seen[key]!r} and {text!r} would both be written as {lab!r}; "
                "give them distinct labels (e.g. LABEL=EXPR on the command line, or a dict "
                "{label: expression})."
            )
        seen[key] = text
        out[text] = lab
    return out


class RunPaths:
    """File names of one run of a recording, in the BIDS-derivative layout.

    Parameters
    ----------
    root : str or Path
        The recording directory.
    subject, task : str
        BIDS labels of the model and the paradigm (see :func:`bids_label`).
    run : int
        The run number.
    """

    def __init__(self, root, subject, task, run):
        self.root = Path(root)
        self.subject, self.task, self.run = subject, task, int(run)
        self.func = self.root / f"sub-{subject}" / "func"
        self.stem = f"sub-{subject}_task-{task}_run-{self.run}"
        self.bold = self.func / f"{self.stem}_bold.zarr"
        self.events = self.func / f"{self.stem}_events.tsv"
        self.sidecar = self.func / f"{self.stem}_bold.json"
        self.journal = self.func / f"{self.stem}_journal.jsonl"

    def remove(self):
        """Delete the run's files (used only when replacing a run was asked for)."""
        for p in (self.bold, self.events, self.sidecar, self.journal):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()


def _prefix(task):
    return f"task-{bids_label(task)}_" if task else ""


def stat_label(output_type, stat_type=None):
    """The ``stat-`` entity of a map: ``z``, ``t``, ``F``, ``p``, ``effect`` or ``variance``.

    Examples
    --------
    >>> from llmfmri.io import stat_label
    >>> stat_label("stat", "t"), stat_label("z_score")
    ('t', 'z')
    """
    if output_type == "stat":
        if stat_type not in ("t", "F"):
            raise OutputNameError(f"A 'stat' map needs stat_type 't' or 'F', got {stat_type!r}.")
        return stat_type
    if output_type not in STAT_LABELS:
        raise OutputNameError(
            f"No file name for output_type {output_type!r}; expected one of "
            f"{['stat', *STAT_LABELS]}."
        )
    return STAT_LABELS[output_type]


def statmap_stem(label, *, task=None):
    """``[task-<t>_]contrast-<label>`` (``label`` already a BIDS label)."""
    return f"{_prefix(task)}contrast-{label}"


def statmap_path(out_dir, label, output_type, stat_type=None, *, task=None):
    """Path of a statistical map: ``OUT/[task-<t>_]contrast-<label>_stat-<s>_statmap.nii.gz``.

    Examples
    --------
    >>> from llmfmri.io import statmap_path
    >>> statmap_path("out", "aMinusB", "z_score").as_posix()
    'out/contrast-aMinusB_stat-z_statmap.nii.gz'
    """
    return Path(out_dir) / (f"{statmap_stem(label, task=task)}_stat-"
                            f"{stat_label(output_type, stat_type)}_statmap.nii.gz")


def design_path(out_dir, run, *, task=None):
    """``OUT/[task-<t>_]run-<k>_design.tsv``."""
    return Path(out_dir) / f"{_prefix(task)}run-{run}_design.tsv"


def network_stem(label, desc, *, task=None):
    """``[task-<t>_]contrast-<label>_desc-<desc>``: a network's ``_mask.nii.gz``, ``_units.tsv``."""
    return f"{statmap_stem(label, task=task)}_desc-{bids_label(desc)}"


def table_path(out_dir, name):
    """``OUT/<name>.tsv`` for a table (``name`` holds letters, digits, ``-`` and ``_``)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", str(name)):
        raise OutputNameError(f"Table name {name!r} must hold letters, digits, '-' and '_'.")
    return Path(out_dir) / f"{name}.tsv"
