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
batch's prompt ids, events, the frame count and a CRC-32 of the stored frames.
The journal is the commit record: on resume, lines after the last complete one
are dropped, frames past the committed count are overwritten, and recording
continues with the first uncommitted prompt. A run is complete only when its
sidecar says so. One writer at a time holds the directory (``_lock.py``).

A damaged journal (batches whose frame counts, onsets or prompt ids do not
follow from the ones before, e.g. two writers of an older llmfmri into one
run, or a journal that promises more frames than the array holds) is repaired
on resume: the batches up to the first inconsistent one are kept when their
frames on disk match their checksums, the rest is recorded again. When that
cannot be checked, the error names the files to delete.

Storage: frames arrive as float32; a narrower storage dtype (``float16``) is
checked as it is cast, and values it cannot hold (beyond +-65,504: stored as
+-inf) are counted per batch in the journal and reported once per run (where,
how many, the largest magnitude) in the sidecar and as a ``StorageWarning``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import atomic_write_json, atomic_write_bytes, logger
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
            if self.array.shape[1] != self.n_units:
                self._unrepairable(f"its array {p.bold} has {self.array.shape[1]} units per "
                                   f"frame, not {self.n_units}")
            entries = self._check_journal(read_journal(p.journal, repair=True))
            if self.array.shape[0] < self.max_frames:  # trimmed by an earlier finalize
                self.array.resize((self.max_frames, self.n_units))
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

    # ---------------------------------------------------------------- resume
    def _unrepairable(self, why):
        p = self.paths
        raise RecordingIncompleteError(
            f"run {p.run} of {p.root} cannot be resumed: {why}. Delete the run's files -- "
            f"{p.bold}, {p.journal} and {p.sidecar} -- and run the same command again to record "
            f"run {p.run} afresh (other runs are kept), or pass overwrite=True (CLI: "
            "--overwrite) to record everything again."
        )

    def _check_journal(self, entries):
        """The journal's consistent batches, repaired if needed (see the module notes)."""
        good, n, seen, why = [], 0, set(), None
        for k, e in enumerate(entries):
            ev, ids, nf = e.get("events"), e.get("prompt_ids"), e.get("n_frames")
            if not (isinstance(ev, list) and isinstance(ids, list) and isinstance(nf, int)):
                why = f"batch {k} lacks prompt ids, events or a frame count"
            elif nf != n + len(ev):
                why = (f"batch {k} claims {nf} frames after {n}, but holds {len(ev)} events "
                       f"(events count vs frames)")
            elif any(not row or row[0] != n + i for i, row in enumerate(ev)):
                why = f"the onsets of batch {k} do not continue at frame {n}"
            elif len(set(ids)) != len(ids) or seen & set(ids):
                why = f"batch {k} repeats prompts {sorted(seen & set(ids))[:3] or ids[:3]}"
            elif nf > self.array.shape[0]:
                why = (f"batch {k} ends at frame {nf}, past the {self.array.shape[0]} frames of "
                       "the array (journal vs array length)")
            if why:
                break
            good.append(e)
            seen.update(ids)
            n = nf
        if why is None:
            return good
        # damaged: keep the batches before it whose frames on disk match their checksums
        kept, start = [], 0
        for e in good:
            crc = e.get("crc32")
            if crc is None:
                self._unrepairable(
                    f"its journal {self.paths.journal} is inconsistent ({why}) and the frames "
                    "of the batches before it cannot be checked (the journal has no "
                    "checksums: it was written by an older llmfmri)")
            stored = np.asarray(self.array[start:e["n_frames"]], dtype=self.dtype)
            if zlib.crc32(np.ascontiguousarray(stored).tobytes()) != crc:
                break
            kept.append(e)
            start = e["n_frames"]
        data = b"".join((json.dumps(e, default=_json_default) + "\n").encode() for e in kept)
        atomic_write_bytes(self.paths.journal, data, overwrite=True)
        logger.warning(
            "run %d: the journal %s was damaged (%s; e.g. two writers of an older llmfmri); "
            "kept the first %d of %d batches (%d frames), whose frames match their checksums, "
            "and records the rest again.", self.paths.run, self.paths.journal, why, len(kept),
            len(entries), start)
        return kept

    # ----------------------------------------------------------------- write
    def commit(self, frames, events, prompt_ids):
        """Write a batch's frames, then commit it to the journal (fsync).

        Frames are cast to the storage dtype here; values it cannot hold are
        counted (see :meth:`storage_losses`).
        """
        frames, lost = _cast(frames, self.dtype, self.n_frames)
        n = frames.shape[0]
        if self.n_frames + n > self.array.shape[0]:
            raise RuntimeError(
                f"run {self.paths.run}: {self.n_frames + n} frames exceed the bound "
                f"{self.array.shape[0]} computed at the start; this is a bug, please report it."
            )
        if n:
            self.array[self.n_frames:self.n_frames + n] = frames
        crc = zlib.crc32(np.ascontiguousarray(frames).tobytes())
        self.n_frames += n
        entry = {"prompt_ids": list(prompt_ids), "n_frames": self.n_frames, "events": events,
                 "crc32": crc}
        if lost:
            entry["lost"] = lost
        line = (json.dumps(entry, default=_json_default) + "\n").encode()
        with open(self.paths.journal, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.done_prompts.extend(prompt_ids)

    def finalize(self):
        """Trim the array, write events.tsv, mark the run complete, drop the journal.

        Returns
        -------
        dict or None
            What the storage dtype could not hold over the whole run (see
            :func:`merge_losses`), also written to the sidecar as ``storage_losses``.
        """
        p = self.paths
        entries = read_journal(p.journal)
        rows = [_upgrade_row(row) for e in entries for row in e["events"]]
        events = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
        if len(events) != self.n_frames:
            self._unrepairable(f"its journal holds {len(events)} events for {self.n_frames} "
                               "frames")
        losses = merge_losses([e["lost"] for e in entries if e.get("lost")])
        self.array.resize((self.n_frames, self.n_units))
        write_events(events, p.events, overwrite=True)  # the journal is the record until now
        side = json.loads(p.sidecar.read_text())
        extra = {"storage_losses": losses} if losses else {}
        self._write_sidecar(complete=True, start_time=side.get("start_time"), end_time=_now(),
                            n_frames=self.n_frames, **extra)
        p.journal.unlink(missing_ok=True)
        self.status = "complete"
        return losses

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


def _cast(frames, dtype, first_frame):
    """Cast a batch to the storage dtype; describe the values it could not hold.

    Returns the cast frames and ``None``, or, when finite values became
    infinite, a dict: ``overflow`` (how many values), ``max_abs`` (the largest
    magnitude lost), ``n_frames`` and ``frames`` (how many frames, the first 20
    as frame indices within the run), ``units`` (unit columns, the first 1,000),
    ``limit`` and ``dtype``.
    """
    frames = np.asarray(frames)
    with np.errstate(over="ignore"):  # counted below, and reported once per run
        stored = frames.astype(dtype, copy=False)
    if stored is frames or np.dtype(dtype).itemsize >= frames.dtype.itemsize \
            or frames.dtype.kind != "f":
        return stored, None
    with np.errstate(invalid="ignore"):
        lost = np.isfinite(frames) & ~np.isfinite(stored)
    if not lost.any():
        return stored, None
    rows = np.flatnonzero(lost.any(axis=1))
    cols = np.flatnonzero(lost.any(axis=0))
    return stored, {
        "overflow": int(lost.sum()), "max_abs": float(np.abs(frames[lost]).max()),
        "n_frames": int(rows.size), "frames": (rows[:20] + int(first_frame)).tolist(),
        "units": cols[:1000].tolist(),
        "limit": float(np.finfo(dtype).max), "dtype": str(np.dtype(dtype)),
    }


def merge_losses(losses):
    """One description of what a run's storage could not hold, from its batches' (or None)."""
    if not losses:
        return None
    units = sorted({u for x in losses for u in x["units"]})
    return {
        "dtype": losses[0]["dtype"], "limit": losses[0]["limit"],
        "overflow": sum(x["overflow"] for x in losses),
        "max_abs": max(x["max_abs"] for x in losses),
        "n_frames": sum(x["n_frames"] for x in losses),
        "frames": sorted({f for x in losses for f in x["frames"]})[:20],
        "n_units": len(units), "units": units[:1000],
    }


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if np.isnan(obj) else float(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
