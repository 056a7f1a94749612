"""``Recording``: lazy reader of a recording directory (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import did_you_mean
from ..paradigm import collapse_events
from ..units import UnitSpace
from ._store import RecordingIncompleteError, RunPaths

__all__ = ["Recording", "load_recording"]


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
        ev = pd.read_csv(self._paths(run).events, sep="\t", na_values=["n/a"],
                         keep_default_na=False, dtype={"token": str, "trial_type": str,
                                                       "prompt_id": str, "response": str})
        ev["token"] = ev["token"].fillna("")
        if "response" in ev:
            ev["response"] = ev["response"].fillna("")
        return ev

    def select(self, sites=None, layers=None, components=None):
        """Columns of units by site, layer and/or component (see :meth:`UnitSpace.select`)."""
        return self.units.select(sites=sites, layers=layers, components=components)

    @property
    def paradigm_path(self):
        """The paradigm file saved with the recording."""
        return self.path / "paradigm.yaml"

    # ---------------------------------------------------------------- export
    def to_nifti(self, run, path=None, *, columns=None):
        """The run as a 4-D NIfTI image (units laid out as a volume, frames on the 4th axis).

        Lossless for float32 recordings. Written to ``path`` if given.
        """
        space = self.units if columns is None else self.units.subset(columns)
        img = space.to_nifti(self.data(run, columns).astype(np.float32, copy=False),
                             description=f"llmfmri {self.task} run-{run}")
        if path is not None:
            from .._utils import atomic_path

            with atomic_path(path, overwrite=False) as tmp:
                img.to_filename(str(tmp))
        return img

    def to_bids(self, out, *, space_label="units", overwrite=False):
        """Export as a BIDS dataset that nilearn's ``first_level_from_bids`` reads.

        Layout (see DESIGN.md): raw-level ``_events.tsv`` and ``_bold.json`` (with
        ``RepetitionTime`` 1.0) and derivative-level
        ``derivatives/llmfmri/sub-*/func/*_space-<label>_desc-preproc_bold.nii.gz``.
        Events are collapsed to one row per prompt (onset, duration in frames).
        """
        from .._utils import atomic_write_json, atomic_write_text

        out = Path(out)
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True to write into it.")
        sub, task = self.subject, self.task
        raw_func = out / f"sub-{sub}" / "func"
        deriv = out / "derivatives" / "llmfmri"
        der_func = deriv / f"sub-{sub}" / "func"
        atomic_write_json(out / "dataset_description.json",
                          {"Name": f"llmfmri export of {self.path.name}", "BIDSVersion": "1.9.0",
                           "DatasetType": "raw"})
        atomic_write_json(deriv / "dataset_description.json",
                          {"Name": "llmfmri", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
                           "GeneratedBy": [{"Name": "llmfmri"}]})
        for run in self.runs:
            if not self.is_complete(run):
                continue
            stem = f"sub-{sub}_task-{task}_run-{run}"
            ev = collapse_events(self.events(run), by="prompt")
            atomic_write_text(raw_func / f"{stem}_events.tsv", ev.to_csv(sep="\t", index=False))
            atomic_write_json(raw_func / f"{stem}_bold.json",
                              {"RepetitionTime": 1.0, "TaskName": task})
            der_func.mkdir(parents=True, exist_ok=True)
            img = self.to_nifti(run)
            target = der_func / f"{stem}_space-{space_label}_desc-preproc_bold.nii.gz"
            if target.exists():
                target.unlink()
            img.to_filename(str(target))
        return out


def load_recording(path):
    """Open a recording directory (same as ``Recording(path)``)."""
    return Recording(path)
