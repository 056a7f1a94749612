"""The time course of units or networks over a run, with condition blocks shaded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design import events_per_frame
from ..exceptions import DataError
from ..networks import Network
from ._base import Display, check_same_units, get_cmap, panel_axes

__all__ = ["TimeCourseDisplay", "plot_time_course"]

#: shading of control (or baseline-role) blocks
CONTROL_COLOUR = "#bdbdbd"


def _blocks(events, n_frames):
    """Contiguous frames of one condition: DataFrame ``start, stop, condition, role``."""
    cols = [c for c in ("onset", "trial_type") if c not in events.columns]
    if cols:
        raise DataError(f"events lacks the column {cols[0]!r} (columns: {list(events.columns)}); "
                        "pass the recording's per-frame events (rec.events(run)).")
    events = events.assign(duration=events["duration"] if "duration" in events else 1)
    frames = np.arange(n_frames, dtype=float)
    kinds, covered = events_per_frame(events, "trial_type", frames)
    roles = {}
    if "role" in events:
        roles = dict(zip(events["trial_type"].astype(object), events["role"].astype(object)))
    labels = np.array([k if c and isinstance(k, str) else None
                       for k, c in zip(kinds, covered)], dtype=object)
    rows, start = [], 0
    for f in range(1, n_frames + 1):
        if f == n_frames or labels[f] != labels[start]:
            if labels[start] is not None:
                name = labels[start]
                role = roles.get(name) or ("control" if name in ("control", "baseline")
                                           else "task")
                rows.append((start, f, name, role))
            start = f
    return pd.DataFrame(rows, columns=["start", "stop", "condition", "role"])


def _frame_rows(frames, n_total):
    if frames is None:
        return slice(0, n_total)
    if isinstance(frames, slice):
        start, stop, step = frames.indices(n_total)
        if step != 1:
            raise ValueError("frames must be a contiguous slice (step 1).")
        return slice(start, stop)
    n = int(frames)
    if n < 1:
        raise ValueError(f"frames must be a positive number of frames or a slice, but got "
                         f"{frames!r}.")
    return slice(0, min(n, n_total))


def _read(recording, run, rows, columns):
    """Only the needed frames and columns of a run (a zarr read of a few columns)."""
    if hasattr(recording, "frames"):
        arr = recording.frames(run)
        if hasattr(arr, "get_orthogonal_selection"):
            return np.asarray(arr.get_orthogonal_selection((rows, columns)), dtype=float)
        return np.asarray(arr[rows], dtype=float)[:, columns]
    if hasattr(recording, "data"):
        return np.asarray(recording.data(run, columns), dtype=float)[rows]
    raise TypeError(
        f"recording must give its frames (frames(run) or data(run, columns), as "
        f"llmfmri.Recording does), but {type(recording).__name__} has neither; open it with "
        "llmfmri.load_recording(path)."
    )


class TimeCourseDisplay(Display):
    """Activation of units (or of networks: the mean of their units) over the frames of a run.

    Condition blocks are shaded (control in grey, each task in its colour),
    one panel per trace. Build it with :meth:`from_recording` (which reads
    only the columns it needs) or :meth:`from_array`.

    Parameters
    ----------
    traces : pandas.DataFrame
        Indexed by frame, one column per trace.
    blocks : pandas.DataFrame
        ``start, stop, condition, role`` of each block (frames ``start`` to
        ``stop - 1``).
    standardize : bool
    title : str

    Attributes
    ----------
    axes_ : ndarray of Axes, one per trace
    figure_ : Figure
    lines_ : dict label -> Line2D
    spans_ : list of the shaded Polygons
    legend_ : Legend
    """

    def __init__(self, traces, blocks, *, standardize=True, title=""):
        self.traces = traces
        self.blocks = blocks
        self.standardize = bool(standardize)
        self.title = title

    @classmethod
    def from_array(cls, data, events, *, labels=None, standardize=True, title=None, start=0):
        """From activations already in memory.

        Parameters
        ----------
        data : array of shape (n_frames,) or (n_frames, n_traces)
        events : pandas.DataFrame
            Events of the run (``onset`` in frames, ``trial_type``; per-frame
            events as a Recording writes them, or one row per block).
        labels : list of str, optional
            One per trace.
        standardize : bool, default=True
            z-score each trace over the frames shown.
        start : int, default=0
            Frame of the first row of ``data``.

        Raises
        ------
        DataError
            For data that is not finite, or events without ``onset``/``trial_type``.
        """
        data = np.asarray(data, dtype=float)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[0] < 2:
            raise DataError(f"data must have shape (n_frames >= 2,) or (n_frames, n_traces), but "
                            f"got shape {data.shape}.")
        if not np.isfinite(data).all():
            raise DataError("data holds NaN or infinite values.")
        labels = [f"trace {i}" for i in range(data.shape[1])] if labels is None else \
            [str(x) for x in labels]
        if len(labels) != data.shape[1]:
            raise DataError(f"labels has {len(labels)} entries for {data.shape[1]} traces.")
        if standardize:
            sd = data.std(axis=0)
            data = (data - data.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        frames = np.arange(start, start + data.shape[0])
        blocks = _blocks(events, start + data.shape[0])
        blocks = blocks[blocks["stop"] > start].assign(
            start=lambda b: np.maximum(b["start"], start))
        traces = pd.DataFrame(data, index=pd.Index(frames, name="frame"), columns=labels)
        return cls(traces, blocks.reset_index(drop=True), standardize=standardize,
                   title=title or "")

    @classmethod
    def from_recording(cls, recording, units, *, run=None, frames=None, standardize=True,
                       title=None):
        """Read the traces of a few units or networks from a recording.

        Parameters
        ----------
        recording : Recording (or anything with ``units``, ``runs``, ``frames(run)``
            and ``events(run)``)
        units : int, array of int, Network, or dict label -> any of these
            A column (one unit), several columns (their mean), a Network (the
            mean of its units), or one trace per entry of a dict.
        run : int, optional
            Default: the first run.
        frames : int or slice, optional
            The first ``frames`` frames, or a slice of frames (default: all).
            Only these frames and the needed columns are read.
        standardize : bool, default=True
        title : str, optional

        Raises
        ------
        DataError
            For a network over other units than the recording's, an empty
            network, or columns outside the recording.
        """
        space = recording.units
        runs = list(recording.runs)
        run = runs[0] if run is None else run
        if run not in runs:
            raise ValueError(f"run {run!r} is not in the recording; runs: {runs}.")
        items = units.items() if isinstance(units, dict) else [(None, units)]
        groups = {}
        for label, what in items:
            if isinstance(what, Network):
                check_same_units(what.units, space, what=f"the network {what.label!r}",
                                 other="the recording's units")
                if what.n_units == 0:
                    raise DataError(f"The network {what.label!r} is empty (0 units): it has no "
                                    "time course; lower its threshold or use top_k.")
                cols = what.columns
                name = label or f"{what.label} (mean of {what.n_units} units)"
            else:
                cols = np.atleast_1d(np.asarray(what, dtype=np.int64))
                if cols.size == 0 or cols.min() < 0 or cols.max() >= space.n_units:
                    raise DataError(f"units must be columns in [0, {space.n_units}), but got "
                                    f"{cols.tolist()[:5]}{'...' if cols.size > 5 else ''}.")
                if label is not None:
                    name = label
                elif cols.size == 1:
                    row = space.table.iloc[int(cols[0])]
                    name = f"layer {row['layer']} {row['component']}, unit {row['index']}"
                else:
                    name = f"mean of {cols.size} units"
            groups[name] = cols
        needed = np.unique(np.concatenate(list(groups.values())))
        n_total = int(recording.n_frames(run)) if hasattr(recording, "n_frames") else None
        events = recording.events(run)
        if n_total is None:
            n_total = len(events)
        rows = _frame_rows(frames, n_total)
        block = _read(recording, run, rows, needed)
        where = {c: i for i, c in enumerate(needed)}
        data = np.column_stack([block[:, [where[c] for c in cols]].mean(axis=1)
                                for cols in groups.values()])
        return cls.from_array(data, events, labels=list(groups), standardize=standardize,
                              title=f"run {run}" if title is None else title, start=rows.start)

    def plot(self, ax=None, *, colors=None, legend=True, title=None):
        """Draw one panel per trace, condition blocks shaded.

        Parameters
        ----------
        ax : Axes or array of Axes, optional
            One Axes is split into one panel per trace.
        colors : dict condition -> colour, optional
        legend : bool, default=True
        title : str, optional

        Returns
        -------
        self
        """
        n = self.traces.shape[1]
        fig, axes, bounding = panel_axes(ax, n, ncols=1, figsize=(9.0, 1.2 + 1.5 * n),
                                         sharex=ax is None)
        conditions = list(dict.fromkeys(self.blocks["condition"]))
        roles = dict(zip(self.blocks["condition"], self.blocks["role"]))
        tasks = [c for c in conditions if roles.get(c) != "control"]
        cmap = get_cmap("tab10")
        palette = {c: (CONTROL_COLOUR if roles.get(c) == "control"
                       else cmap(tasks.index(c) % 10)) for c in conditions}
        palette.update(colors or {})
        x = self.traces.index.to_numpy()
        self.lines_, self.spans_ = {}, []
        for a, label in zip(axes.ravel(), self.traces.columns):
            for b in self.blocks.itertuples():
                self.spans_.append(a.axvspan(b.start - 0.5, b.stop - 0.5,
                                             color=palette[b.condition], alpha=0.3, lw=0))
            (self.lines_[label],) = a.plot(x, self.traces[label].to_numpy(), color="k", lw=0.8)
            a.set_ylabel("z" if self.standardize else "activation", fontsize="small")
            a.set_title(label, fontsize="small", loc="left")
            a.set_xlim(x[0] - 0.5, x[-1] + 0.5)
            a.tick_params(labelsize="x-small")
        axes.ravel()[n - 1].set_xlabel("frame (token)")
        head = self.title if title is None else title
        if bounding is not None:
            bounding.set_title(head, fontsize="medium")
        elif head:
            fig.suptitle(head, fontsize="medium")
        self.legend_ = None
        if legend and conditions:
            from matplotlib.patches import Patch

            handles = [Patch(facecolor=palette[c], alpha=0.5, label=c) for c in conditions]
            self.legend_ = axes.ravel()[0].legend(handles=handles, loc="lower left",
                                                  bbox_to_anchor=(0.0, 1.12),
                                                  ncol=min(len(handles), 6),
                                                  fontsize="small", frameon=False)
        self.axes_, self.bounding_ax_, self.figure_ = axes, bounding, fig
        return self


def plot_time_course(recording, units, *, run=None, frames=None, standardize=True, title=None,
                     ax=None, colors=None, legend=True):
    """Plot the time course of units or networks in a run (see :class:`TimeCourseDisplay`).

    Returns
    -------
    TimeCourseDisplay
    """
    return TimeCourseDisplay.from_recording(recording, units, run=run, frames=frames,
                                            standardize=standardize, title=title).plot(
        ax=ax, colors=colors, legend=legend)
