"""Data inputs of the GLM stage: 2-D arrays (numpy, zarr, dask), runs, and recordings."""

from __future__ import annotations

import numpy as np

from .._utils import check_positive_int, did_you_mean
from ..exceptions import DataError

__all__ = ["as_2d", "chunk_shape", "column_block", "is_recording", "as_run_list",
           "recording_runs", "RunView", "as_runs"]

_BLOCK_BYTES = 64 * 2 ** 20    # column block of a (whole-column) read: 64 MiB of float64


def as_2d(Y, name="Y"):
    """``(Y, (n_frames, n_units))`` for anything with a 2-D ``shape`` (arrays are not copied).

    Raises
    ------
    DataError
        When ``Y`` is not 2-D.
    """
    shape = getattr(Y, "shape", None)
    if shape is None:
        Y = np.asarray(Y)
        shape = Y.shape
    if len(shape) != 2:
        raise DataError(
            f"{name} must be 2-D, of shape (n_frames, n_units), but got shape {tuple(shape)}."
        )
    return Y, tuple(int(s) for s in shape)


def chunk_shape(Y):
    """(rows, cols) of the array's chunks, or (None, None)."""
    chunks = getattr(Y, "chunks", None)
    if chunks is None or len(chunks) != 2:
        return None, None
    out = []
    for c in chunks:
        if isinstance(c, (tuple, list)):  # dask: tuple of block sizes
            c = max(c) if c else None
        out.append(int(c) if c else None)
    return tuple(out)


def column_block(Y, n_frames, n_units, chunk_size):
    """Units per whole-column read block (used where all frames of a block are needed)."""
    if chunk_size is not None:
        return check_positive_int("chunk_size", chunk_size)
    if isinstance(Y, np.ndarray):
        return n_units  # already in memory; sub-blocking bounds the temporaries
    _, unit_chunk = chunk_shape(Y)
    width = max(1, _BLOCK_BYTES // (n_frames * 8))
    if unit_chunk:
        width = max(unit_chunk, (width // unit_chunk) * unit_chunk)
    return min(width, n_units)


def is_recording(obj):
    """True for Recording-like objects (``frames``, ``events``, ``runs``, ``units``)."""
    return all(hasattr(obj, a) for a in ("frames", "events", "runs", "units")) and callable(
        getattr(obj, "frames"))


def as_run_list(value, n, name):
    """One item per run: ``None`` → ``[None] * n``; a list must have ``n`` items."""
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise DataError(f"{name} lists {len(value)} runs, but the data have {n} runs.")
        return list(value)
    if n != 1:
        raise DataError(
            f"The data have {n} runs, so {name} must be a list of {n} items (one per run), "
            f"but got a single {type(value).__name__}."
        )
    return [value]


def recording_runs(data, runs=None, *, events=None, name="run_data"):
    """Arrays, events, run labels and units of a Recording or of array data.

    Parameters
    ----------
    data : Recording, array of shape (n_frames, n_units), or list of arrays
    runs : list, optional
        A subset of a Recording's runs, or the labels of array runs.
    events : DataFrame or list, optional
        Events per run (a Recording's own by default).

    Returns
    -------
    arrays : list
        One lazily read ``(n_frames, n_units)`` array per run.
    events : list
        One events table (or None) per run.
    runs : list
        Run labels.
    units : UnitSpace or None
    """
    if is_recording(data):
        all_runs = list(data.runs)
        if runs is None:
            runs = all_runs
        else:
            runs = [runs] if np.ndim(runs) == 0 else list(runs)
            bad = [r for r in runs if r not in all_runs]
            if bad:
                raise DataError(f"runs names run {bad[0]!r}, but the recording has runs "
                                f"{all_runs}.")
        arrays = [data.frames(r) for r in runs]
        if events is None:
            events = [data.events(r) for r in runs]
        units = data.units
    else:
        arrays = list(data) if isinstance(data, (list, tuple)) else [data]
        runs = list(range(1, len(arrays) + 1)) if runs is None else list(runs)
        if len(runs) != len(arrays):
            raise DataError(f"runs lists {len(runs)} labels for {len(arrays)} runs of data.")
        units = None
    if not arrays:
        raise DataError(f"{name} holds no runs.")
    return arrays, as_run_list(events, len(arrays), "events"), runs, units


class RunView:
    """A recording-like view of runs: ``.runs``, ``.frames(run)``, ``.events(run)``, ``.units``.

    What the analysis stages read from a Recording, for arrays too (see :func:`as_runs`).
    """

    def __init__(self, runs, frames, events, units):
        self.runs = list(runs)
        self._frames, self._events, self.units = frames, events, units

    def __repr__(self):
        return f"RunView(runs={self.runs}, units={self.units!r})"

    def frames(self, run):
        """The ``(n_frames, n_units)`` array of ``run`` (lazy for a Recording)."""
        return self._frames(run)

    def events(self, run):
        """The per-frame events table of ``run``."""
        return self._events(run)


def as_runs(data, events=None, runs=None, units=None):
    """A :class:`RunView` of a Recording (optionally a subset of its runs) or of arrays.

    Parameters
    ----------
    data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
    events : DataFrame or list of DataFrame, optional
        Per-frame events, one per run; a Recording's own by default. Required for arrays.
    runs : list, optional
        A subset of a Recording's runs, or the labels of array runs (default 1, 2, ...).
    units : UnitSpace, optional
        The units (a Recording brings its own).

    Returns
    -------
    RunView

    Raises
    ------
    DataError
        For unknown runs, no runs, or arrays without one events table per run.
    """
    if is_recording(data):
        all_runs = list(data.runs)
        runs = all_runs if runs is None else ([runs] if np.ndim(runs) == 0 else list(runs))
        for r in runs:
            if r not in all_runs:
                raise DataError(f"runs names run {r!r}, but the recording has runs {all_runs}."
                                + did_you_mean(str(r), map(str, all_runs)))
        ev = data.events
        if events is not None:
            evs = list(events) if isinstance(events, (list, tuple)) else [events]
            if len(evs) != len(runs):
                raise DataError(f"events lists {len(evs)} tables for {len(runs)} runs.")
            ev = dict(zip(runs, evs)).__getitem__
        return RunView(runs, data.frames, ev, units if units is not None else data.units)
    arrays = list(data) if isinstance(data, (list, tuple)) else [data]
    if not arrays:
        raise DataError("data holds no runs.")
    runs = list(range(1, len(arrays) + 1)) if runs is None else list(runs)
    if len(runs) != len(arrays):
        raise DataError(f"runs lists {len(runs)} labels for {len(arrays)} runs of data.")
    if events is None:
        raise DataError("Array data need events=... (one per-frame events table per run).")
    evs = list(events) if isinstance(events, (list, tuple)) else [events]
    if len(evs) != len(arrays):
        raise DataError(f"events lists {len(evs)} tables for {len(arrays)} runs of data.")
    return RunView(runs, dict(zip(runs, arrays)).__getitem__, dict(zip(runs, evs)).__getitem__,
                   units)
