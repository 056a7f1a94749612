"""Design matrices from events: boxcars by default, HRF kernels as options, drift, confounds."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import DesignWarning
from .._utils import check_option, did_you_mean, logger, warn
from ._checks import DesignMatrixError, check_design_matrix

__all__ = ["make_design_matrix", "check_events", "events_per_frame", "DesignWarning"]

_DRIFT_MODELS = (None, "polynomial", "cosine")
_HRF_MODELS = (
    None, "boxcar", "spm", "spm + derivative", "spm + derivative + dispersion",
    "glover", "glover + derivative", "glover + derivative + dispersion", "fir",
)
#: confound names with a special meaning (indicator families / derived columns)
_SPECIAL_CONFOUNDS = ("prompt", "block", "token_length")


def check_events(events):
    """Validate an events table (or read an events TSV) for design matrices.

    The one validator every consumer of events goes through (nilearn's
    ``check_events``): ``onset`` must exist; ``duration`` defaults to 1 frame;
    both must be finite numbers and durations >= 0; ``modulation`` must be
    numeric.

    Parameters
    ----------
    events : pandas.DataFrame, str or Path, or None
        A table, or an events TSV (read exactly: only ``n/a`` is missing).

    Returns
    -------
    pandas.DataFrame or None
        A validated copy (``onset``, ``duration`` as float).

    Raises
    ------
    DesignMatrixError
        For a missing ``onset`` column or non-finite/negative values.
    TypeError
        For anything that is not a DataFrame, a path or None.
    """
    if events is None:
        return None
    if isinstance(events, (str, Path)):
        from ..io import read_events

        path = Path(events)
        if not path.exists():
            raise FileNotFoundError(f"events file {path} does not exist.")
        events = read_events(path)
    if not isinstance(events, pd.DataFrame):
        raise TypeError(
            "events must be a pandas DataFrame, a path to an events TSV, or None, "
            f"but got {type(events).__name__}."
        )
    if "onset" not in events.columns:
        close = did_you_mean("onset", events.columns).replace(" Did you mean ", "").rstrip("?")
        raise DesignMatrixError(
            "events must have an 'onset' column (frame index within the run), but its "
            f"columns are {list(events.columns)}."
            + (f" Perhaps rename column {close} to 'onset'." if close else "")
        )
    events = events.copy()
    if "duration" not in events.columns:
        events["duration"] = 1.0
    for col in ("onset", "duration"):
        vals = pd.to_numeric(events[col], errors="coerce")
        if vals.isna().any() or not np.isfinite(vals.to_numpy(dtype=float)).all():
            bad = np.flatnonzero(~np.isfinite(vals.to_numpy(dtype=float)))
            raise DesignMatrixError(
                f"events column {col!r} must be finite numbers (frames), but rows "
                f"{bad[:5].tolist()} hold {events[col].iloc[bad[:5]].tolist()}."
            )
        events[col] = vals.astype(float)
    if (events["duration"] < 0).any():
        bad = np.flatnonzero(events["duration"].to_numpy() < 0)
        raise DesignMatrixError(
            f"events 'duration' must be >= 0 frames, but rows {bad[:5].tolist()} have "
            f"{events['duration'].iloc[bad[:5]].tolist()}."
        )
    if "modulation" in events.columns:
        events["modulation"] = pd.to_numeric(events["modulation"], errors="raise").astype(float)
    _warn_duplicates(events)
    return events


def _warn_duplicates(events):
    """Warn about duplicated events: same trial type, onset and duration (nilearn's definition).

    Their amplitudes (or modulations) are summed into the regressors, as nilearn
    does, in the boxcar and the HRF paths alike; a per-frame label
    (:func:`events_per_frame`) is the same for both rows.
    """
    key = [c for c in ("trial_type", "onset", "duration") if c in events.columns]
    live = events["trial_type"].notna().to_numpy() if "trial_type" in events.columns else \
        np.ones(len(events), dtype=bool)
    sub = events.loc[live, key]
    dup = sub.duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    rows = np.flatnonzero(live)[dup]
    first = events.iloc[rows[0]]
    kind = f"trial_type {first['trial_type']!r}, " if "trial_type" in events.columns else ""
    n_extra = int(sub.duplicated(keep="first").sum())
    hint = ""
    if "run" in events.columns and events["run"].nunique() > 1:
        hint = (f" The events hold several runs ({sorted(pd.unique(events['run']).tolist())}): "
                "build one design per run from that run's events.")
    summed = "modulations" if "modulation" in events.columns else "amplitudes"
    warn(
        f"Duplicated events: {n_extra} events rows repeat another row's trial_type, onset and "
        f"duration (rows {rows[:6].tolist()}{' ...' if rows.size > 6 else ''}; first: "
        f"{kind}onset {first['onset']:g}, duration {first['duration']:g} frames). Their "
        f"{summed} are summed, so the regressor reaches 2 or more there (as nilearn does); "
        f"drop the duplicated rows if that is not intended.{hint}",
        DesignWarning,
    )


def _frame_times(frame_times, n_frames):
    if frame_times is not None and n_frames is not None:
        raise ValueError("Pass either frame_times or n_frames, not both.")
    if frame_times is None and n_frames is None:
        raise ValueError(
            "make_design_matrix needs the number of frames: pass n_frames (an int) or "
            "frame_times (an array of frame times, in frames)."
        )
    if frame_times is None or np.ndim(frame_times) == 0:
        n = frame_times if frame_times is not None else n_frames
        if isinstance(n, (bool, np.bool_)) or int(n) != n or int(n) <= 0:
            raise ValueError(f"n_frames must be a positive integer, but got {n!r}.")
        return np.arange(int(n), dtype=np.float64)
    ft = np.asarray(frame_times, dtype=np.float64).ravel()
    if ft.size == 0 or not np.isfinite(ft).all():
        raise ValueError("frame_times must be a non-empty array of finite times (in frames).")
    if np.any(np.diff(ft) <= 0):
        raise ValueError("frame_times must be strictly increasing.")
    return ft


def _boxcar(onsets, durations, amplitudes, frame_times):
    """Sum of boxcars at ``frame_times``: frame t is on when onset <= t < onset + duration."""
    n = frame_times.size
    start = np.searchsorted(frame_times, onsets, side="left")
    stop = np.searchsorted(frame_times, onsets + durations, side="left")
    diff = np.zeros(n + 1)
    np.add.at(diff, start, amplitudes)
    np.add.at(diff, stop, -amplitudes)
    reg = np.cumsum(diff)[:n]
    # cumsum of +-1 is exact for indicator boxcars; clean rounding for modulated ones
    reg[np.abs(reg) < 1e-12 * max(1.0, np.abs(amplitudes).max(initial=0))] = 0.0
    return reg


def _warn_overlap(cond, rows, onsets, durs, ft):
    """Warn when rows of one trial type (not duplicates: those warn in check_events) overlap.

    A frame is one token: two rows of one condition covering it sum to a boxcar
    of 2, which is almost never meant.
    """
    count = _boxcar(onsets, durs, np.ones(onsets.size), ft)
    if count.max(initial=0) <= 1 or rows[["onset", "duration"]].duplicated().any():
        return
    frames = ft[count > 1]
    warn(
        f"events of trial type {cond!r} overlap: {frames.size} frames (first "
        f"{[int(f) if float(f).is_integer() else float(f) for f in frames[:5]]}) are covered "
        f"by several rows, so its boxcar is summed to {count.max():g} there. Merge or shorten "
        "the overlapping rows if each frame should count once.",
        DesignWarning,
    )


def events_per_frame(events, column, frame_times):
    """The value of ``events[column]`` at every frame covered by an event row.

    Parameters
    ----------
    events : pandas.DataFrame
        Validated events (see :func:`check_events`), onsets and durations in frames.
    column : str
        The events column to spread over frames.
    frame_times : array of shape (n_frames,)
        Frame times, in frames.

    Returns
    -------
    values : ndarray of object, shape (n_frames,)
        ``None`` on frames no event covers.
    covered : ndarray of bool, shape (n_frames,)

    Raises
    ------
    DesignMatrixError
        When overlapping rows give one frame two different values.
    """
    out = np.full(frame_times.size, None, dtype=object)
    covered = np.zeros(frame_times.size, dtype=bool)
    onsets = events["onset"].to_numpy()
    durations = np.maximum(events["duration"].to_numpy(), 1.0)  # a row covers at least its frame
    start = np.searchsorted(frame_times, onsets, side="left")
    stop = np.searchsorted(frame_times, onsets + durations, side="left")
    values = events[column].to_numpy(dtype=object)
    for a, b, v in zip(start, stop, values):
        if a >= b:
            continue
        if covered[a:b].any():
            prev = out[a:b][covered[a:b]]
            same = all((p == v) or (_isnan(p) and _isnan(v)) for p in prev)
            if not same:
                raise DesignMatrixError(
                    f"events rows overlap at frame {int(frame_times[a])} with different "
                    f"{column!r} values ({prev[0]!r} and {v!r}); per-frame confounds need "
                    "one value per frame."
                )
        out[a:b] = [v] * (b - a)
        covered[a:b] = True
    return out, covered


def _isnan(v):
    try:
        return v is None or bool(np.isnan(v))
    except TypeError:
        return False


def _indicators(values, covered, prefix):
    labels = pd.unique(pd.Series(values[covered]).dropna())
    cols = {}
    for lab in labels:
        cols[f"{prefix}_{lab}"] = np.array([v == lab for v in values], dtype=np.float64)
    return cols


def _confound_columns(confounds, events, frame_times):
    """Return (dict of name -> column, list of indicator families) for ``confounds``."""
    n = frame_times.size
    if confounds is None:
        return {}, []
    items = confounds if isinstance(confounds, (list, tuple)) else [confounds]
    cols, families = {}, []
    for item in items:
        if isinstance(item, str):
            if events is None:
                raise DesignMatrixError(
                    f"confound {item!r} is read from the events, but events is None; "
                    "pass events or give confounds as a DataFrame of shape (n_frames, k)."
                )
            name = "prompt" if item == "prompt_id" else item
            source = {"prompt": "prompt_id", "block": "block",
                      "token_length": "token"}.get(name, name)
            if source not in events.columns:
                raise DesignMatrixError(
                    f"confound {item!r} needs the events column {source!r}, but the events "
                    f"have columns {list(events.columns)}."
                    + did_you_mean(source, list(events.columns) + list(_SPECIAL_CONFOUNDS))
                )
            values, covered = events_per_frame(events, source, frame_times)
            if name in ("prompt", "block"):
                fam = _indicators(values, covered, name)
                cols.update(fam)
                families.append(list(fam))
                continue
            if name == "token_length":
                values = np.array([len(str(v)) if v is not None and not _isnan(v) else np.nan
                                   for v in values], dtype=np.float64)
            else:
                try:
                    values = pd.to_numeric(pd.Series(values), errors="raise").to_numpy(float)
                except (ValueError, TypeError) as exc:
                    raise DesignMatrixError(
                        f"confound {item!r} must be a numeric events column, but it holds "
                        f"non-numeric values such as {values[covered][:3].tolist()}."
                    ) from exc
            missing = ~np.isfinite(values)
            if missing.all():
                raise DesignMatrixError(
                    f"confound {item!r} has no finite value on any frame; drop it."
                )
            if missing.any():
                fill = float(np.mean(values[~missing]))
                warn(
                    f"confound {item!r} is missing (NaN or no event row) on "
                    f"{int(missing.sum())} of {n} frames; filled with its mean {fill:.4g}.",
                    DesignWarning,
                )
                values = np.where(missing, fill, values)
            cols[name] = values
        else:
            if isinstance(item, pd.DataFrame):
                df = item
            else:
                arr = np.asarray(item, dtype=np.float64)
                if arr.ndim == 1:
                    arr = arr[:, None]
                df = pd.DataFrame(arr, columns=[f"confound_{len(cols) + i}"
                                                for i in range(arr.shape[1])])
            if len(df) != n:
                raise DesignMatrixError(
                    f"confounds must have one row per frame: expected {n} rows, but got "
                    f"shape {df.shape}."
                )
            for c in df.columns:
                v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
                if not np.isfinite(v).all():
                    raise DesignMatrixError(
                        f"confound column {c!r} has {int((~np.isfinite(v)).sum())} NaN or "
                        "infinite values; fill them before building the design."
                    )
                cols[str(c)] = v
    return cols, families


def make_design_matrix(events, frame_times=None, *, n_frames=None, hrf_model=None,
                       drift_model="polynomial", drift_order=1, high_pass=0.01,
                       conditions=None, confounds=None, constant="auto", fir_delays=None,
                       oversampling=50, min_onset=-24, check=True):
    """Build a first-level design matrix from events, in frames (one frame = one token).

    Parameters
    ----------
    events : pandas.DataFrame, path to an events TSV, or None
        Columns ``onset`` and ``duration`` in frames (``duration`` defaults to 1),
        optional ``trial_type`` (rows whose ``trial_type`` is NaN are baseline) and
        ``modulation``, as in nilearn and BIDS. Per-frame rows (duration 1, as a
        Recording writes them) and collapsed per-prompt or per-block rows give the
        same boxcars.
    frame_times : int or array of shape (n_frames,), optional
        Frame times in frames; an int ``n`` means ``0, 1, ..., n - 1``.
    n_frames : int, optional
        Number of frames (alternative to ``frame_times``).
    hrf_model : None or str, default=None
        ``None`` (or ``"boxcar"``): unconvolved boxcars, the natural choice since
        token time has no haemodynamics. Otherwise a nilearn HRF model
        (``"spm"``, ``"glover"``, ``"... + derivative"``, ``"fir"``) with one frame
        taken as one second (``t_r = 1``).
    drift_model : {"polynomial", "cosine", None}, default="polynomial"
        Slow drift regressors (nilearn's orthogonal polynomials or discrete cosines).
    drift_order : int, default=1
        Order of the polynomial drift.
    high_pass : float, default=0.01
        Cut-off of the cosine drift in cycles per frame.
    conditions : list of str, optional
        Trial types to model; other trial types become implicit baseline.
        All trial types by default (sorted, as nilearn).
    confounds : str, DataFrame, array or list of those, optional
        Extra regressors. Strings name per-frame events columns: any numeric
        column (``"position"`` token position within the prompt, ``"logprob"``)
        or ``"token_length"`` (characters of ``token``), ``"prompt"`` (one
        intercept per ``prompt_id``) and ``"block"`` (one intercept per block).
        Missing values of a numeric events column are filled with its mean,
        with a :class:`DesignWarning`. A DataFrame or array gives regressors of
        shape (n_frames, k) directly.
    constant : {"auto", True, False}, default="auto"
        Whether to keep the ``constant`` column. ``"auto"`` drops it when a
        family of indicator regressors (unmodulated boxcar conditions, prompt or
        block intercepts) already sums to one on every frame, i.e. when it would
        be collinear with them.
    fir_delays : list of int, optional
        Delays (in frames) of the FIR model.
    oversampling, min_onset : int
        Passed to nilearn's ``compute_regressor`` for HRF models.
    check : bool, default=True
        Check the design for full column rank; a rank deficient design raises
        :class:`DesignMatrixError` naming the collinear columns.

    Returns
    -------
    design_matrix : pandas.DataFrame of shape (n_frames, n_regressors)
        Indexed by frame time (``index.name == "frame"``). Columns: conditions
        (sorted), confounds, drifts, ``constant``.

    Examples
    --------
    >>> import pandas as pd
    >>> from llmfmri.design import make_design_matrix
    >>> ev = pd.DataFrame({"onset": [2, 6], "duration": [2, 2], "trial_type": ["a", "a"]})
    >>> make_design_matrix(ev, 8, drift_model=None)["a"].tolist()
    [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    """
    if hrf_model == "boxcar":
        hrf_model = None
    check_option("hrf_model", hrf_model, _HRF_MODELS)
    check_option("drift_model", drift_model, _DRIFT_MODELS)
    check_option("constant", constant, ("auto", True, False))
    ft = _frame_times(frame_times, n_frames)
    events = check_events(events)
    columns, families = _condition_columns(events, ft, hrf_model, conditions, fir_delays,
                                           oversampling, min_onset)
    conf_cols, conf_families = _confound_columns(confounds, events, ft)
    clash = sorted(set(conf_cols) & set(columns))
    if clash:
        raise DesignMatrixError(
            f"confound columns {clash} have the same names as condition regressors; rename them."
        )
    columns.update(conf_cols)
    families += conf_families
    if drift_model is not None and ft.size < 2:
        # nilearn's drift of one frame is NaN; say what is wrong in the house's words
        drifts = ([f"drift_{k}" for k in range(1, int(drift_order) + 1)]
                  if drift_model == "polynomial" else ["cosine00"])
        names = list(columns) + drifts + ["constant"]
        raise DesignMatrixError(
            f"design_matrix has {ft.size} frames for at least {len(names)} regressors "
            f"({', '.join(names)}, with drift_model={drift_model!r}); a GLM needs "
            "more frames than regressors to leave residual degrees of freedom. A run of one "
            "frame cannot be fitted: record more prompts or frames per run, or summarise runs "
            "and test across them (SecondLevelGLM)."
        )
    columns.update(_drift_columns(ft, drift_model, drift_order, high_pass, columns))
    if _keep_constant(constant, families, columns):
        columns["constant"] = np.ones(ft.size)
    index = pd.Index(ft.astype(np.int64) if np.array_equal(ft, np.round(ft)) else ft,
                     name="frame")
    design = pd.DataFrame(columns, index=index)
    if check:
        check_design_matrix(design)
    return design


def _condition_columns(events, ft, hrf_model, conditions, fir_delays, oversampling, min_onset):
    """Regressors of the conditions, and the indicator families among them (boxcars)."""
    columns, families = {}, []
    if events is None or not len(events):
        return columns, families
    trial = events["trial_type"] if "trial_type" in events.columns else pd.Series(
        ["task"] * len(events), index=events.index)
    present = sorted(pd.unique(trial.dropna()).tolist(), key=str)
    if conditions is None:
        wanted = present
    else:
        wanted = [conditions] if isinstance(conditions, str) else list(conditions)
        unknown = [c for c in wanted if c not in present]
        if unknown:
            raise DesignMatrixError(
                f"conditions names trial type {unknown[0]!r}, which is not in the events; "
                f"trial types present: {present}." + did_you_mean(unknown[0], present)
            )
    modulated = "modulation" in events.columns
    cond_cols = []
    for cond in wanted:
        rows = events[trial == cond]
        onsets = rows["onset"].to_numpy(dtype=float)
        durs = rows["duration"].to_numpy(dtype=float)
        amps = rows["modulation"].to_numpy(dtype=float) if modulated else np.ones(len(rows))
        if hrf_model is None:
            if (durs == 0).any():
                raise DesignMatrixError(
                    f"events of trial type {cond!r} have duration 0, which gives an empty "
                    "boxcar; use duration >= 1 frame, or an hrf_model for impulses."
                )
            columns[str(cond)] = _boxcar(onsets, durs, amps, ft)
            cond_cols.append(str(cond))
            _warn_overlap(cond, rows, onsets, durs, ft)
        else:
            from nilearn.glm.first_level import compute_regressor

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                reg, names = compute_regressor(
                    (onsets, durs, amps), hrf_model, ft, con_id=str(cond),
                    oversampling=oversampling, fir_delays=fir_delays, min_onset=min_onset,
                )
            for k, name in enumerate(names):
                columns[str(name)] = reg[:, k]
    if hrf_model is None and not modulated and cond_cols:
        families.append(cond_cols)
    return columns, families


def _drift_columns(ft, drift_model, drift_order, high_pass, taken):
    """nilearn's drift regressors (without its constant), refusing names already taken."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drift = make_first_level_design_matrix(
            ft, None, drift_model=drift_model, drift_order=drift_order, high_pass=high_pass,
        )
    out = {}
    for c in drift.columns:
        if c in taken:
            raise DesignMatrixError(
                f"regressor name {c!r} is reserved for the drift model; rename that condition "
                "or confound."
            )
        if c != "constant":
            out[c] = drift[c].to_numpy(dtype=np.float64)
    return out


def _keep_constant(constant, families, columns):
    """Whether the design gets a ``constant`` column (``"auto"``: unless a family sums to one)."""
    if constant != "auto":
        return constant is True
    partition = [fam for fam in families
                 if np.allclose(np.sum([columns[c] for c in fam], axis=0), 1.0)]
    if partition:
        shown = partition[0][:3] + (["..."] if len(partition[0]) > 3 else [])
        logger.debug("make_design_matrix: no 'constant' column, since %s already sum to "
                     "one on every frame.", shown)
    return not partition
