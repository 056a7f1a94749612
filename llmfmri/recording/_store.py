"""On-disk layout of a recording and the crash-safe, resumable run writer.

Store: one zarr (v3) array per run, ``frames x units``, chunked along both axes.
Why zarr: chunked and compressed, readable lazily and out of core (dask reads
it directly with ``dask.array.from_zarr``), each chunk written atomically by
zarr's local store (temporary file, then rename), and no file handle or lock
to lose when a process dies. The array is created once with an upper bound on
the run's frames (unwritten chunks take no space), written batch by batch, and
trimmed to its true length when the run completes, so its metadata is
written only twice.

Crash safety: after each batch the frames are written first, then one line is
appended (and fsynced) to the run's journal (``..._journal.jsonl``) with the
batch's prompt ids, events and the frame count. The journal is the commit
record: on resume, lines after the last complete one are dropped, frames past
the committed count are overwritten, and recording continues with the first
uncommitted prompt. A run is complete only when its sidecar says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import atomic_write_json
from ..exceptions import RecordingConflictError, RecordingIncompleteError
from ..io import RunPaths, bids_label, write_events
from ..paradigm import EVENT_COLUMNS

__all__ = ["RecordingConflictError", "RecordingIncompleteError", "RunPaths", "RunWriter",
           "bids_label"]


def identity_hash(identity):
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def identity_diff(old, new):
    """Names of the identity fields that differ between two recordings."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def read_journal(path, *, repair=False):
    """Committed batches of a journal; a torn last line (a crash mid-write) is dropped."""
    entries, good_bytes = [], 0
    if not Path(path).exists():
        return entries
    with open(path, "rb") as fh:
        data = fh.read()
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            entries.append(json.loads(line))
        except ValueError:
            break
        good_bytes += len(line)
    if repair and good_bytes != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_bytes)
            fh.flush()
            os.fsync(fh.fileno())
    return entries


class RunWriter:
    """Write one run: create or resume, commit batches, finalise.

    Parameters
    ----------
    paths : RunPaths
    n_units, max_frames : int
        Width of a frame, and an upper bound on the run's frames.
    identity : dict
        What makes this run this run (model, paradigm hash, sites, units,
        dtype, frames mode, seed). A different identity on disk is refused
        unless ``overwrite``.
    provenance : dict
        Extra fields for the sidecar (package versions, batch size, device...).
    """

    def __init__(self, paths, *, n_units, max_frames, dtype, identity, provenance,
                 chunk_frames=256, unit_chunk=8192, overwrite=False):
        self.paths = paths
        self.n_units, self.max_frames = int(n_units), max(int(max_frames), 1)
        self.dtype = np.dtype(dtype)
        self.identity = identity
        self.provenance = provenance
        self.chunks = (int(chunk_frames), int(min(unit_chunk, n_units)))
        self.overwrite = overwrite
        self.n_frames = 0
        self.done_prompts = []
        self.array = None
        self.status = None  # "new", "resumed" or "complete"

    # ------------------------------------------------------------------ open
    def open(self):
        import zarr

        p = self.paths
        if p.sidecar.exists():
            side = json.loads(p.sidecar.read_text())
            if side.get("identity") != self.identity:
                if not self.overwrite:
                    diff = identity_diff(side.get("identity", {}), self.identity)
                    raise RecordingConflictError(
                        f"{p.sidecar} holds a different recording (differs in: {', '.join(diff)}). "
                        "Record into another directory, or pass overwrite=True (CLI: --overwrite) "
                        "to replace it."
                    )
                p.remove()
            elif side.get("complete"):
                self.status = "complete"
                self.n_frames = int(side["n_frames"])
                return self
        if p.sidecar.exists() and p.bold.exists():
            self.array = zarr.open_array(str(p.bold), mode="r+")
            entries = read_journal(p.journal, repair=True)
            if entries:
                self.n_frames = int(entries[-1]["n_frames"])
            self.done_prompts = [pid for e in entries for pid in e["prompt_ids"]]
            self.status = "resumed"
            return self
        p.remove()
        p.func.mkdir(parents=True, exist_ok=True)
        self.array = zarr.create_array(
            store=str(p.bold), shape=(self.max_frames, self.n_units), chunks=self.chunks,
            dtype=self.dtype, fill_value=0, overwrite=True,
        )
        self._write_sidecar(complete=False, start_time=_now())
        p.journal.write_bytes(b"")
        self.status = "new"
        return self

    # ----------------------------------------------------------------- write
    def commit(self, frames, events, prompt_ids):
        """Write a batch's frames, then commit it to the journal (fsync)."""
        frames = np.asarray(frames, dtype=self.dtype)
        n = frames.shape[0]
        if self.n_frames + n > self.array.shape[0]:
            raise RuntimeError(
                f"run {self.paths.run}: {self.n_frames + n} frames exceed the bound "
                f"{self.array.shape[0]} computed at the start; this is a bug, please report it."
            )
        if n:
            self.array[self.n_frames:self.n_frames + n] = frames
        self.n_frames += n
        entry = {"prompt_ids": list(prompt_ids), "n_frames": self.n_frames, "events": events}
        line = (json.dumps(entry, default=_json_default) + "\n").encode()
        with open(self.paths.journal, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.done_prompts.extend(prompt_ids)

    def finalize(self):
        """Trim the array, write events.tsv, mark the run complete, drop the journal."""
        p = self.paths
        entries = read_journal(p.journal)
        rows = [_upgrade_row(row) for e in entries for row in e["events"]]
        events = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
        if len(events) != self.n_frames:
            raise RuntimeError(f"run {p.run}: {len(events)} events for {self.n_frames} frames.")
        self.array.resize((self.n_frames, self.n_units))
        write_events(events, p.events, overwrite=True)  # the journal is the record until now
        side = json.loads(p.sidecar.read_text())
        self._write_sidecar(complete=True, start_time=side.get("start_time"), end_time=_now(),
                            n_frames=self.n_frames)
        p.journal.unlink(missing_ok=True)
        self.status = "complete"

    def _write_sidecar(self, *, complete, **extra):
        side = {"TaskName": self.paths.task, "RepetitionTime": 1.0,
                "RepetitionTimeUnits": "token (one frame per token step)",
                "complete": bool(complete), "identity": self.identity,
                "dtype": str(self.dtype), "chunks": list(self.chunks), **self.provenance, **extra}
        atomic_write_json(self.paths.sidecar, side, overwrite=True)


_OLD_COLUMNS = [c for c in EVENT_COLUMNS if c != "role"]  # journals of llmfmri <= 0.1.0.dev0


def _upgrade_row(row):
    """A journal row in the current schema (rows from before ``role`` get an empty role)."""
    if len(row) == len(_OLD_COLUMNS):
        return [dict(zip(_OLD_COLUMNS, row)).get(c) for c in EVENT_COLUMNS]
    return row


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if np.isnan(obj) else float(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
