"""What the mean, noise and resample strategies read from a reference recording (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._utils import logger
from ..exceptions import DataError

__all__ = ["reference_columns", "reference_frames", "ReferenceStats", "reference_stats",
           "check_reference_model"]


def _describe(reference):
    return str(getattr(reference, "path", None) or type(reference).__name__)


def check_reference_model(reference, model_id, weights):
    """Raise DataError when ``reference`` was recorded on another model than (model_id, weights)."""
    identity = getattr(reference, "identity", None)
    path = getattr(reference, "path", None)
    if identity is None and path is not None and (Path(path) / "recording.json").is_file():
        identity = json.loads((Path(path) / "recording.json").read_text()).get("identity")
    if not identity:
        return
    ref_id, ref_weights = identity.get("model_id"), identity.get("model_weights")
    other = (ref_id is not None and ref_id != model_id) or (
        ref_weights is not None and weights is not None and str(ref_weights) != str(weights))
    if other:
        raise DataError(
            f"The reference recording {_describe(reference)} was made on model {ref_id!r} "
            f"(weights {ref_weights}), but the lesioned model is {model_id!r} (weights "
            f"{weights}): its units come from another model. Record the reference on the "
            "model you lesion."
        )


def reference_columns(reference, units):
    """Columns of ``reference`` holding each unit of ``units`` (LesionUnits), in pair order."""
    space = getattr(reference, "units", None)
    if space is None or not hasattr(reference, "runs"):
        raise TypeError(
            f"reference must be a Recording (llmfmri.load_recording(...)) or a RecordingSubset, "
            f"but got {type(reference).__name__}."
        )
    table = space.table
    rows = zip(table["site"], table["index"], table["column"])
    lookup = {(s, int(i)): int(c) for s, i, c in rows}
    cols, missing = [], []
    for pair in units.pairs():
        col = lookup.get(pair)
        if col is None:
            missing.append(pair)
        else:
            cols.append(col)
    if missing:
        raise DataError(
            f"The reference recording {_describe(reference)} does not hold {len(missing)} of the "
            f"{units.n_units} units of the lesion {units.label!r} (first {missing[:3]}); its "
            f"sites are {space.sites[:4]}{' ...' if len(space.sites) > 4 else ''}. Record the "
            "lesioned sites (all their units) in the reference."
        )
    return np.asarray(cols, dtype=np.int64)


def reference_frames(reference, columns, *, condition=None, runs=None):
    """Yield ``(run, frames)`` of the chosen columns, only frames of ``condition`` if given."""
    conds = None if condition is None else (
        [condition] if isinstance(condition, str) else list(condition))
    runs = list(reference.runs) if runs is None else ([runs] if np.ndim(runs) == 0
                                                      else list(runs))
    unknown = sorted(set(runs) - set(reference.runs))
    if unknown:
        raise DataError(f"reference_runs names runs {unknown} that the reference recording "
                        f"{_describe(reference)} does not have; it has {list(reference.runs)}.")
    order = np.argsort(columns)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    sorted_cols = columns[order]
    seen = set()
    for run in runs:
        if not reference.is_complete(run):
            logger.warning("reference run %s is incomplete and is skipped", run)
            continue
        try:
            arr = reference.data(run, sorted_cols)
        except TypeError:  # a RecordingSubset reads all its (few) columns
            arr = np.asarray(reference.data(run))[:, sorted_cols]
        arr = np.asarray(arr, dtype=np.float64)[:, inverse]
        if conds is not None:
            ev = reference.events(run)
            seen.update(ev["trial_type"].astype(str))
            keep = ev["trial_type"].astype(str).isin(conds).to_numpy()
            n = min(len(keep), arr.shape[0])
            arr = arr[:n][keep[:n]]
        yield run, arr
    if conds is not None:
        missing = [c for c in conds if c not in seen]
        if missing:
            from .._utils import did_you_mean

            raise DataError(
                f"condition {missing[0]!r} has no frames in the reference recording "
                f"{_describe(reference)}; its trial types are {sorted(seen)}."
                + did_you_mean(missing[0], sorted(seen))
            )


class ReferenceStats:
    """Per-unit mean and standard deviation of a reference recording, and its frames.

    Attributes
    ----------
    mean, std : ndarray of shape (n_units,)
        Over the reference frames (``std`` with ``ddof=1``), in the lesion's pair order.
    n_frames : int
    bank : ndarray of shape (n_frames, n_units) or None
        The frames themselves (for ``strategy="resample"``).
    """

    def __init__(self, mean, std, n_frames, bank=None):
        self.mean, self.std, self.n_frames, self.bank = mean, std, int(n_frames), bank


def reference_stats(reference, units, *, condition=None, runs=None, keep_frames=False):
    """Mean, spread (and optionally the frames) of ``units`` in a reference recording.

    Parameters
    ----------
    reference : Recording or RecordingSubset
    units : LesionUnits
    condition : str or list of str, optional
        Use only frames of these trial types.
    runs : list of int, optional
    keep_frames : bool
        Keep the frames (the resample bank).

    Returns
    -------
    ReferenceStats
    """
    cols = reference_columns(reference, units)
    k = cols.size
    mean, m2, n = np.zeros(k), np.zeros(k), 0
    bank = []
    for _, arr in reference_frames(reference, cols, condition=condition, runs=runs):
        if not arr.shape[0]:
            continue
        if not np.isfinite(arr).all():
            raise DataError(f"The reference recording {_describe(reference)} has NaN or "
                            "infinite values in the lesioned units.")
        # Chan et al.'s pairwise update: exact for large means ("massive activations")
        nb = arr.shape[0]
        mb = arr.mean(axis=0)
        m2b = ((arr - mb) ** 2).sum(axis=0)
        delta = mb - mean
        tot = n + nb
        mean = mean + delta * nb / tot
        m2 = m2 + m2b + delta ** 2 * n * nb / tot
        n = tot
        if keep_frames:
            bank.append(arr)
    if n < 2:
        raise DataError(
            f"The reference recording {_describe(reference)} has {n} frame(s) for the lesion "
            f"{units.label!r}"
            + (f" in condition {condition!r}" if condition is not None else "")
            + "; at least 2 are needed for a mean and a spread."
        )
    return ReferenceStats(mean, np.sqrt(m2 / (n - 1)), n,
                          np.vstack(bank) if keep_frames else None)
