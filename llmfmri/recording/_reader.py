"""``Recording``: lazy reader of a recording directory (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._utils import did_you_mean, logger
from ..exceptions import OutputNameError, RecordingIncompleteError
from ..io import OutputSet, RunPaths, read_events, write_nifti
from ..paradigm import collapse_events
from ..units import UnitSpace

__all__ = ["Recording", "RecordingSubset", "load_recording"]


class Recording:
    """A recording on disk: frames x units per run, events, units, provenance.

    Parameters
    ----------
    path : str or Path
        A directory written by :func:`llmfmri.record`.

    Attributes
    ----------
    path : Path
    units : UnitSpace
        The recorded units (columns of every run's array).
    task, subject : str
        BIDS labels of the paradigm and the model.
    runs : list of int
        Runs present on disk (complete or not).

    Examples
    --------
    >>> from llmfmri.recording import Recording
    >>> rec = Recording("runs/fn")  # doctest: +SKIP
    >>> rec.frames(1).shape  # doctest: +SKIP
    (384, 17280)
    """

    def __init__(self, path):
        self.path = Path(path)
        meta = self.path / "recording.json"
        if not meta.exists():
            raise FileNotFoundError(
                f"{self.path} is not an llmfmri recording (no recording.json); record one with "
                "llmfmri.record(...) or `llmfmri record`."
            )
        info = json.loads(meta.read_text())
        self.subject, self.task = info["subject"], info["task"]
        self.identity = info["identity"]
        self.units = UnitSpace.from_tsv(self.path / "units.tsv")
        func = self.path / f"sub-{self.subject}" / "func"
        self.runs = sorted(
            int(p.name.split("_run-")[1].split("_")[0])
            for p in func.glob(f"sub-{self.subject}_task-{self.task}_run-*_bold.json")
        ) if func.exists() else []

    def __repr__(self):
        done = [r for r in self.runs if self.is_complete(r)]
        return (f"Recording({str(self.path)!r}, task={self.task!r}, model={self.subject!r}, "
                f"runs={self.runs} ({len(done)} complete), {self.units.n_units} units)")

    # ----------------------------------------------------------------- runs
    def _paths(self, run):
        if run not in self.runs:
            raise ValueError(
                f"run {run!r} is not in {self.path}; runs on disk: {self.runs}."
                + did_you_mean(str(run), [str(r) for r in self.runs])
            )
        return RunPaths(self.path, self.subject, self.task, run)

    def metadata(self, run):
        """The run's JSON sidecar (provenance) as a dict."""
        return json.loads(self._paths(run).sidecar.read_text())

    def is_complete(self, run):
        """Whether ``run`` finished recording."""
        return bool(self.metadata(run).get("complete"))

    @property
    def complete(self):
        """Whether every run on disk is complete."""
        return bool(self.runs) and all(self.is_complete(r) for r in self.runs)

    def _check_complete(self, run):
        if not self.is_complete(run):
            raise RecordingIncompleteError(
                f"run {run} of {self.path} is incomplete: the recording stopped before the run "
                "finished, so it cannot be analysed. Resume it by running the same "
                "llmfmri.record(...) / `llmfmri record` command again, or analyse only the "
                f"complete runs {[r for r in self.runs if self.is_complete(r)]}."
            )

    def n_frames(self, run):
        """Number of frames (token steps) of a complete run."""
        self._check_complete(run)
        return int(self.metadata(run)["n_frames"])

    def frames(self, run):
        """The run's ``(n_frames, n_units)`` array, lazily (a zarr array; slice it to read)."""
        import zarr

        self._check_complete(run)
        return zarr.open_array(str(self._paths(run).bold), mode="r")

    def data(self, run, columns=None):
        """Read a run into memory as a float array of shape (n_frames, n_units or len(columns))."""
        arr = self.frames(run)
        if columns is None:
            return np.asarray(arr[:])
        columns = np.asarray(columns)
        return np.asarray(arr.get_orthogonal_selection((slice(None), columns)))

    def events(self, run):
        """The run's per-frame events table (onset and duration in frames)."""
        self._check_complete(run)
        return read_events(self._paths(run).events)

    def select(self, sites=None, layers=None, components=None):
        """Columns of units by site, layer and/or component (see :meth:`UnitSpace.select`)."""
        return self.units.select(sites=sites, layers=layers, components=components)

    @property
    def paradigm_path(self):
        """The paradigm file saved with the recording."""
        return self.path / "paradigm.yaml"

    def subset(self, columns):
        """A view of this recording restricted to some units (nothing is read or copied).

        Parameters
        ----------
        columns : array of int
            Columns (unit indices) to keep, e.g. ``rec.select(layers=[3, 4])``;
            kept in increasing order.

        Returns
        -------
        RecordingSubset
            With the same ``runs``, ``events``, ``n_frames`` and a ``units``
            of the kept units; ``frames(run)`` is a lazy column view.
        """
        return RecordingSubset(self, columns)

    # ---------------------------------------------------------------- export
    def to_nifti(self, run, path=None, *, columns=None, overwrite=False):
        """The run as a 4-D NIfTI image (units laid out as a volume, frames on the 4th axis).

        Lossless: float32 and float16 recordings are stored as float32. A run
        of more than 32,767 frames is a NIfTI-2 image (NIfTI-1 holds at most
        32,767 per dimension; see :meth:`UnitSpace.nifti_format`). Written to
        ``path`` (atomically) if given; an existing file is refused unless
        ``overwrite``.
        """
        space = self.units if columns is None else self.units.subset(columns)
        img = space.to_nifti(self.data(run, columns).astype(np.float32, copy=False),
                             description=f"llmfmri {self.task} run-{run}")
        if path is not None:
            write_nifti(img, path, overwrite=overwrite)
        return img

    def to_bids(self, out, *, space_label="units", overwrite=False):
        """Export as a BIDS dataset that nilearn's ``first_level_from_bids`` reads.

        Layout (see DESIGN.md): raw-level ``_events.tsv`` and ``_bold.json`` (with
        ``RepetitionTime`` 1.0) and derivative-level
        ``derivatives/llmfmri/sub-*/func/*_space-<label>_desc-preproc_bold.nii.gz``.
        Events are collapsed to one row per prompt (onset, duration in frames).
        Every target is checked before the first file is written; existing files
        are refused unless ``overwrite``. Each image's format is decided while
        planning (NIfTI-2 for runs of more than 32,767 frames), and the export
        is all-or-nothing: a failure part-way removes what it wrote.

        Units are layer-output coordinates whose means are often near zero or
        negative: analyse the export with nilearn's ``signal_scaling=False``. Its
        default ``signal_scaling=0`` rescales each unit of each run to percent
        signal change, ``100 * (y / max(mean, 1) - 1)``, which puts runs on
        different scales and distorts the fixed effects. The export's ``README``,
        each ``_bold.json`` (``SignalScaling``) and ``docs/recording.md`` say so,
        with the nilearn call that reproduces :class:`~llmfmri.glm.FirstLevelGLM`.

        Parameters
        ----------
        out : str or Path
            The BIDS folder.
        space_label : str, default="units"
            The ``space-`` entity of the images (letters and digits).
        overwrite : bool, default=False

        Raises
        ------
        OutputNameError
            ``space_label`` is not a BIDS label.
        FileExistsError
            A target exists and ``overwrite`` is False (nothing is written).
        """
        import re

        if not isinstance(space_label, str) or not re.fullmatch(r"[A-Za-z0-9]+", space_label):
            fixed = re.sub(r"[^A-Za-z0-9]", "", str(space_label))
            raise OutputNameError(
                f"space_label must be a BIDS label (letters and digits only; it names the "
                f"images' space- entity), but got {space_label!r}."
                + (f" Did you mean {fixed!r}?" if fixed else "")
            )
        out = Path(out)
        sub, task = self.subject, self.task
        files = OutputSet(out, overwrite=overwrite)
        files.add_json("dataset_description.json",
                       {"Name": f"llmfmri export of {self.path.name}", "BIDSVersion": "1.9.0",
                        "DatasetType": "raw"})
        files.add_text("README", _BIDS_README.format(task=task, space=space_label))
        deriv = Path("derivatives") / "llmfmri"
        files.add_json(deriv / "dataset_description.json",
                       {"Name": "llmfmri", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
                        "GeneratedBy": [{"Name": "llmfmri"}]})
        files.add_nifti(deriv / f"sub-{sub}" / "func" /
                        f"sub-{sub}_task-{task}_space-{space_label}_desc-brain_mask.nii.gz",
                        self.units.mask_img())
        for run in self.runs:
            if not self.is_complete(run):
                continue
            stem = f"sub-{sub}_task-{task}_run-{run}"
            raw_func = Path(f"sub-{sub}") / "func"
            files.add_tsv(raw_func / f"{stem}_events.tsv",
                          collapse_events(self.events(run), by="prompt"))
            files.add_json(raw_func / f"{stem}_bold.json",
                           {"RepetitionTime": 1.0, "TaskName": task, **_BOLD_NOTES})
            fmt = self.units.nifti_format(self.n_frames(run))  # decided while planning
            logger.info("to_bids: run %d, %d frames: %s", run, self.n_frames(run), fmt)
            files.add_nifti(deriv / f"sub-{sub}" / "func" /
                            f"{stem}_space-{space_label}_desc-preproc_bold.nii.gz",
                            lambda run=run: self.to_nifti(run))
        files.write()
        return out


#: what every exported ``_bold.json`` says about the units (extra BIDS sidecar fields)
_BOLD_NOTES = {
    "RepetitionTimeUnits": "one frame per token step (RepetitionTime 1.0 = one token)",
    "SignalScaling": (
        "none: units are layer-output coordinates with means near zero; do not scale them to "
        "percent signal change (nilearn: FirstLevelModel(signal_scaling=False))"
    ),
}

_BIDS_README = """\
llmfmri export of a language-model recording (task-{task})
=============================================================

Each "voxel" of derivatives/llmfmri/sub-*/func/*_space-{space}_desc-preproc_bold.nii.gz is one
unit (one coordinate of one layer's output); each volume is one token step (RepetitionTime 1.0:
one frame = one token). Events (onset and duration in frames) are one row per prompt. The unit
mask is *_space-{space}_desc-brain_mask.nii.gz. Images with more than 32,767 frames are NIfTI-2.

Analysing with nilearn
----------------------
Units have means near zero (or negative), so nilearn's default signal_scaling=0 (each voxel of
each run scaled to 100 * (y / max(mean, 1) - 1), percent signal change for BOLD) puts runs on
different scales and distorts the fixed effects. Use signal_scaling=False, the unit mask
(nilearn's own mask is made for brains and drops units) and llmfmri's design: boxcars
(hrf_model=None), the same drift and noise model. nilearn keeps a constant collinear with
conditions that cover every frame (one degree of freedom too few): leave the control out as
baseline. For example:

    from nilearn.glm.first_level import first_level_from_bids
    models, imgs, events, _ = first_level_from_bids(
        BIDS_DIR, "{task}", space_label="{space}", img_filters=[("desc", "preproc")],
        derivatives_folder="derivatives/llmfmri", slice_time_ref=0.0,
        signal_scaling=False, hrf_model=None, drift_model="polynomial", drift_order=1,
        noise_model="ols", mask_img=MASK)
    events = [e[e.trial_type != CONTROL] for e in events[0]]
    z = models[0].fit(imgs[0], events).compute_contrast(TASK, output_type="z_score")

which reproduces llmfmri's FirstLevelGLM(noise_model="ols", conditions=[TASK]) z maps
(see llmfmri's docs/recording.md).
"""


class _ColumnView:
    """Lazy view of some columns of an (n_frames, n_units) array, sliceable as ``[:, a:b]``."""

    def __init__(self, array, columns):
        self.array = array
        self.columns = np.asarray(columns, dtype=np.int64)
        self.shape = (int(array.shape[0]), int(self.columns.size))
        self.dtype = getattr(array, "dtype", None)
        self.chunks = getattr(array, "chunks", None)

    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        sel = self.columns[cols]
        sel = np.atleast_1d(sel)
        lo, hi = int(sel.min()), int(sel.max()) + 1
        block = np.asarray(self.array[rows, lo:hi])
        return block[..., sel - lo]

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


class RecordingSubset:
    """Some units of a :class:`Recording` (see :meth:`Recording.subset`)."""

    def __init__(self, recording, columns):
        columns = np.unique(np.asarray(columns, dtype=np.int64))
        n = recording.units.n_units
        if columns.size == 0 or columns.min() < 0 or columns.max() >= n:
            raise ValueError(
                f"columns must be non-empty unit indices in [0, {n}), but got "
                f"{columns[:5].tolist()}{'...' if columns.size > 5 else ''}."
            )
        self._rec = recording
        self.columns = columns
        self.units = recording.units.subset(columns)
        self.runs = recording.runs
        self.path = getattr(recording, "path", None)
        self.task = getattr(recording, "task", None)
        self.subject = getattr(recording, "subject", None)

    def __repr__(self):
        return f"RecordingSubset({self._rec!r}, {self.columns.size} units)"

    def frames(self, run):
        """Lazy ``(n_frames, n_kept_units)`` view of the run."""
        return _ColumnView(self._rec.frames(run), self.columns)

    def data(self, run):
        """The kept units of a run, read into memory."""
        return self._rec.data(run, self.columns)

    def events(self, run):
        return self._rec.events(run)

    def n_frames(self, run):
        return self._rec.n_frames(run)

    def is_complete(self, run):
        return self._rec.is_complete(run)

    def metadata(self, run):
        return self._rec.metadata(run)


def load_recording(path):
    """Open a recording directory (same as ``Recording(path)``)."""
    return Recording(path)
