"""make_report: the report of the main job's outputs, read from its analysis folder.

It reads maps (NIfTI), networks (unit tables) and tables (TSV, JSON), never
the recorded frames; the one exception is the time-course figure, which reads
a few columns of the first ``max_frames`` frames of one run.
"""

from __future__ import annotations

import html
import json
import platform
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import logger, warn, with_verbose
from .._version import __version__
from ..exceptions import DataError
from ._report import REPORT_NAME, Report

__all__ = ["make_report", "load_analysis", "Analysis", "RecordingFolder", "find_lesion_tables"]

_STATMAP = re.compile(r"contrast-(?P<label>[A-Za-z0-9]+)_stat-z_statmap\.nii(\.gz)?$")


class Analysis:
    """What an analysis folder holds, read once (maps, networks, tables, provenance).

    Attributes
    ----------
    path : Path
    summary : dict
        ``summary.json`` (empty when absent).
    recording : Recording or None
    units : UnitSpace or None
    maps : dict task -> UnitMap
        The z map of each task's contrast.
    networks : dict task -> Network
    tables : dict name -> DataFrame
        ``overlap``, ``overlap-dice``, ``repeatability``, ``identification``,
        ``identification-confusion``, ``networks`` (those present).
    designs : dict name -> DataFrame
        ``*_design.tsv`` files of the folder.
    lesions : list of (Path, Path or None)
        Lesion studies' behaviour and summary tables in the folder or below it
        (:func:`find_lesion_tables`).
    """

    def __init__(self, path, summary, recording, units, maps, networks, tables, designs,
                 problems, lesions=()):
        self.path = path
        self.summary = summary
        self.recording = recording
        self.units = units
        self.maps = maps
        self.networks = networks
        self.tables = tables
        self.designs = designs
        self.problems = problems
        self.lesions = list(lesions)

    def __repr__(self):
        return (f"Analysis({str(self.path)!r}, {len(self.maps)} maps, {len(self.networks)} "
                f"networks, tables {sorted(self.tables)})")


def _resolve_dir(analysis_dir):
    path = Path(analysis_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; give the analysis folder of `llmfmri run` (OUT/analysis) "
            "or its recording folder OUT."
        )
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file; give the analysis folder (OUT/analysis).")
    if not (path / "summary.json").exists() and (path / "analysis").is_dir():
        path = path / "analysis"
    return path


class RecordingFolder:
    """The parts of a recording folder a report reads: units, provenance, events (no frames).

    ``llmfmri.reports`` sits on the torch-free side of the layers, so it does
    not import :mod:`llmfmri.recording`; it reads the folder's JSON, TSV and
    paradigm files through :mod:`llmfmri.io` names. Pass a
    :class:`llmfmri.Recording` to :func:`make_report` for the time courses,
    which read frames (``llmfmri report`` and ``llmfmri run`` do).

    Attributes
    ----------
    path : Path
    subject, task : str
    identity : dict
    units : UnitSpace
    runs : list of int
    """

    def __init__(self, path, runs=None):
        from ..io import RunPaths
        from ..units import UnitSpace

        self.path = Path(path)
        meta = self.path / "recording.json"
        if not meta.exists():
            raise FileNotFoundError(f"{self.path} is not an llmfmri recording (no "
                                    "recording.json).")
        info = json.loads(meta.read_text())
        self.subject, self.task = info["subject"], info["task"]
        self.identity = info.get("identity", {})
        self.units = UnitSpace.from_tsv(self.path / "units.tsv")
        self._paths = lambda run: RunPaths(self.path, self.subject, self.task, run)
        if runs is None:
            runs, run = [], 1
            while self._paths(run).sidecar.exists():
                runs.append(run)
                run += 1
        self.runs = [int(r) for r in runs if self._paths(r).sidecar.exists()]

    def __repr__(self):
        return f"RecordingFolder({str(self.path)!r}, runs={self.runs})"

    def metadata(self, run):
        """The run's JSON sidecar."""
        return json.loads(self._paths(run).sidecar.read_text())

    def is_complete(self, run):
        """Whether the run finished recording."""
        return bool(self.metadata(run).get("complete"))

    def n_frames(self, run):
        """Frames of the run (from its sidecar)."""
        return int(self.metadata(run)["n_frames"])

    def events(self, run):
        """The run's per-frame events."""
        from ..io import read_events

        return read_events(self._paths(run).events)

    @property
    def paradigm_path(self):
        """The paradigm file saved with the recording."""
        return self.path / "paradigm.yaml"


def _open_recording(recording, analysis, runs=None):
    """A Recording given by the caller, or a RecordingFolder (a path, or the parent folder)."""
    if recording is None:
        parent = analysis.parent
        if not (parent / "recording.json").exists():
            return None
        recording = parent
    if isinstance(recording, (str, Path)):
        return RecordingFolder(recording, runs=runs)
    return recording


def _statmap_values(path, units):
    import nibabel as nib

    img = nib.load(str(path))
    if tuple(img.shape[:3]) != tuple(units.shape):
        raise DataError(
            f"{path.name} has the volume shape {tuple(img.shape)}, but the recording's units "
            f"lay out as {units.shape}: the map was made from another model or other sites."
        )
    return units.from_volume(np.asarray(img.dataobj, dtype=np.float64))


def _none(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


@with_verbose
def load_analysis(analysis_dir, *, recording=None, verbose=0):
    """Read an analysis folder: maps, networks and tables (never the frames).

    Parameters
    ----------
    analysis_dir : str or Path
        ``OUT/analysis`` of ``llmfmri run`` (or ``OUT`` itself).
    recording : Recording, str or Path, optional
        A :class:`llmfmri.Recording` (its frames give time courses), or the
        folder of one (read as a :class:`RecordingFolder`: units, events and
        provenance, no frames). Default: the folder above ``analysis`` when it
        is a recording.
    verbose : int, default=0

    Returns
    -------
    Analysis

    Raises
    ------
    FileNotFoundError
        For a folder that does not exist or holds no analysis output.
    DataError
        For maps or networks that do not fit the recording's units.
    """
    from ..glm import UnitMap
    from ..io import read_tsv
    from ..networks import Network
    from ..units import UnitSpace

    analysis = _resolve_dir(analysis_dir)
    summary_path = analysis / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    statmaps = sorted(analysis.glob("*_stat-z_statmap.nii*"))
    lesions = find_lesion_tables(analysis)
    if not summary and not statmaps and not (analysis / "networks.tsv").exists() \
            and not lesions:
        raise FileNotFoundError(
            f"{analysis} holds no analysis outputs (summary.json, *_stat-z_statmap.nii.gz, "
            "networks.tsv, *-behaviour.tsv of a lesion study); run `llmfmri run` first, or "
            "give its --out folder."
        )
    rec = _open_recording(recording, analysis, runs=summary.get("runs"))
    units = rec.units if rec is not None else None
    if units is None and (analysis / "units.tsv").exists():
        units = UnitSpace.from_tsv(analysis / "units.tsv")
    problems = []
    tasks = summary.get("tasks", {})
    by_label = {info.get("label"): t for t, info in tasks.items()}
    inference = summary.get("inference")
    maps = {}
    if units is None and statmaps:
        problems.append("The maps cannot be laid out over layers: no recording (units.tsv) "
                        "was found next to the analysis folder; pass recording=...")
    for path in statmaps if units is not None else []:
        m = _STATMAP.search(path.name)
        label = m.group("label") if m else path.name
        task = by_label.get(label, label)
        contrast = tasks.get(task, {}).get("contrast", label)
        maps[task] = UnitMap(_statmap_values(path, units), units, output_type="z_score",
                             stat_type="t", contrast=contrast, inference=inference)
        logger.debug("report: read %s", path.name)
    order = {t: i for i, t in enumerate(tasks)}  # the paradigm's order, not the files'
    maps = dict(sorted(maps.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    tables = {}
    for name in ("networks", "overlap", "overlap-dice", "repeatability", "identification",
                 "identification-confusion"):
        path = analysis / f"{name}.tsv"
        if path.exists():
            index = 0 if name in ("overlap-dice", "identification-confusion") else None
            tables[name] = read_tsv(path, index_col=index)
    networks = {}
    if "networks" in tables and units is not None:
        for row in tables["networks"].to_dict(orient="records"):
            label = str(row["label"])
            cols = read_tsv(analysis / row["units"])["column"].to_numpy(dtype=np.int64) \
                if _none(row.get("units")) and (analysis / str(row["units"])).exists() else None
            if cols is None:
                problems.append(f"The unit table of network {label!r} is missing.")
                continue
            if cols.size and cols.max() >= units.n_units:
                raise DataError(f"The network {label!r} names unit {cols.max()}, but the "
                                f"recording has {units.n_units} units: it was made from another "
                                "model or other sites.")
            mask = np.zeros(units.n_units, dtype=bool)
            mask[cols] = True
            keys = ("contrast", "inference", "rule", "tail", "alpha", "correction", "height",
                    "fraction", "k")
            kw = {k: _none(row.get(k)) for k in keys}
            kw["rule"] = kw["rule"] or "threshold"
            kw["k"] = None if kw["k"] is None else int(kw["k"])
            networks[label] = Network(mask, units, label=label, stat_map=maps.get(label),
                                      per_layer=str(row.get("per_layer")) == "True", **kw)
    designs = {p.name.replace("_design.tsv", ""): read_tsv(p, index_col=0)
               for p in sorted(analysis.glob("*_design.tsv"))}
    return Analysis(analysis, summary, rec, units, maps, networks, tables, designs, problems,
                    lesions)


def _lesion_sidecar(behaviour):
    """The study's JSON next to its behaviour table (``<prefix>.json`` or ``summary.json``)."""
    prefix = behaviour.name[: -len("-behaviour.tsv")]
    for path in (behaviour.with_name(f"{prefix}.json"), behaviour.with_name("summary.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("settings"), dict):
            return data
    return {}


def find_lesion_tables(folder):
    """Lesion studies' behaviour tables in ``folder`` and its subfolders (two levels).

    A lesion study (``llmfmri lesion``, ``LesionStudy.save``,
    ``WeightLesionStudy.save``) writes ``<prefix>-behaviour.tsv`` with the
    columns ``condition`` (``intact``, ``lesion`` and control kinds), ``measure``,
    ``set`` and ``value``, next to ``<prefix>-summary.tsv``.

    Returns
    -------
    list of (Path, Path or None)
        Each behaviour table and its summary table (None when absent), sorted.
    """
    from ..io import read_tsv

    folder = Path(folder)
    found = []
    for pattern in ("*-behaviour.tsv", "*/*-behaviour.tsv", "*/*/*-behaviour.tsv"):
        for path in sorted(folder.glob(pattern)):
            try:
                head = read_tsv(path, dtype=str)
            except (OSError, ValueError):  # not a table: not a lesion study's
                continue
            if not {"condition", "measure", "set", "value"} <= set(head.columns) or \
                    "lesion" not in set(head["condition"]):
                continue
            summary = path.with_name(path.name[: -len("-behaviour.tsv")] + "-summary.tsv")
            found.append((path, summary if summary.exists() else None))
    return found


def _display_threshold(network):
    """The smallest z of a (positive-tail) network: the map's cut (None if empty or unknown)."""
    if network is None or network.n_units == 0 or network.stat_map is None:
        return None
    z = np.asarray(network.stat_map.values)[network.mask]
    z = np.abs(z) if network.tail == "two-sided" else (-z if network.tail == "negative" else z)
    return float(np.floor(z.min() * 100) / 100)


def _tasks_table(a):
    rows = []
    for task, info in a.summary.get("tasks", {}).items():
        rows.append({"task": task, "contrast": info.get("contrast"),
                     "network units": info.get("n_units"),
                     "fraction of units": info.get("fraction"),
                     "inference": info.get("inference"),
                     "token-level units (fixed effect)": info.get("token_level_n_units")})
    if not rows:
        rows = [{"task": k, "contrast": n.contrast, "network units": n.n_units,
                 "fraction of units": n.n_units / max(n.n_total, 1), "inference": n.inference}
                for k, n in a.networks.items()]
    return pd.DataFrame(rows)


def _provenance(a):
    s, info = a.summary, {}
    rec = a.recording
    meta = {}
    if rec is not None and rec.runs:
        try:
            meta = rec.metadata(rec.runs[0])
        except (OSError, ValueError):  # pragma: no cover - an unreadable sidecar
            meta = {}
    identity = getattr(rec, "identity", {}) if rec is not None else {}
    model = meta.get("model", {})
    info["model"] = {"id": s.get("model") or identity.get("model_id"),
                     "revision": identity.get("model_revision"),
                     "weights sha256": s.get("model_weights") or identity.get("model_weights"),
                     "architecture": identity.get("architecture"),
                     "source": model.get("source"), "weights": model.get("weights"),
                     "dtype": meta.get("model_dtype"), "device": meta.get("device")}
    if rec is not None:
        runs = {}
        for r in rec.runs:
            m = rec.metadata(r)
            runs[f"run {r}"] = (f"{m.get('n_frames', 'n/a')} frames, "
                                f"{m.get('start_time', '?')} to {m.get('end_time', '?')}"
                                + ("" if m.get("complete") else " (incomplete)"))
        sites = list(identity.get("sites", rec.units.sites))
        info["recording"] = {
            "folder": str(rec.path), "task": rec.task,
            "sites": f"{len(sites)} ({sites[0]} ... {sites[-1]})" if sites else "n/a",
            "units": rec.units.n_units, "frames": identity.get("frames"),
            "context": identity.get("context"), "recording seed": identity.get("seed"),
            "generation": meta.get("generation"), "runs": runs}
    info["paradigm"] = {"name": s.get("paradigm") or identity.get("paradigm"),
                        "sha256": s.get("paradigm_sha256") or identity.get("paradigm_sha256")}
    info["analysis"] = {k: s.get(k) for k in ("inference", "inference_description", "alpha",
                                              "correction", "n_permutations", "random_state",
                                              "llmfmri_version") if k in s}
    if "seconds" in s:
        info["analysis"]["seconds"] = s["seconds"]
    if isinstance(s.get("settings"), dict):  # a lesion study's summary.json
        info["lesion study"] = s["settings"]
        info["model"]["id"] = info["model"]["id"] or s["settings"].get("model")
    if meta.get("versions"):
        info["versions when recorded"] = meta["versions"]
    import matplotlib
    import nibabel

    info["versions of this report"] = {"llmfmri": __version__, "numpy": np.__version__,
                                       "pandas": pd.__version__,
                                       "matplotlib": matplotlib.__version__,
                                       "nibabel": nibabel.__version__,
                                       "python": platform.python_version()}
    return info


@with_verbose
def make_report(analysis_dir, *, recording=None, command=None, title=None, threshold=None,
                mosaic=True, max_frames=2000, verbose=0):
    """The report of an analysis folder (the main job's ``OUT/analysis``).

    Sections: summary, paradigm, design matrices, each contrast's maps (layers
    x units, slice mosaic, glass network) and top units by layer, networks
    (overlay and layer profiles), overlap, repeatability, decoding, time
    courses, provenance (model, weights hash, versions, seeds) and the
    command. Sections whose outputs are absent are left out. It reads maps and
    tables only; the time courses read a few columns of the first
    ``max_frames`` frames of the first run.

    Parameters
    ----------
    analysis_dir : str or Path
        ``OUT/analysis`` (or ``OUT``).
    recording : Recording, str or Path, optional
        A :class:`llmfmri.Recording` (``llmfmri.load_recording(OUT)``): its
        units, paradigm, events and provenance, and a few columns of its frames
        for the time courses. A folder (or, by default, the folder above
        ``analysis``) gives everything but the time courses.
    command : str, optional
        The command that made the analysis (default: ``summary.json``'s
        ``command`` when recorded).
    title : str, optional
    threshold : float, optional
        Blank ``|z| < threshold`` in the maps (default: each network's own cut,
        the smallest z of its units).
    mosaic : bool, default=True
        Add the slice mosaic of each map.
    max_frames : int, default=2000
        Frames of the time-course figure (0: no time course).
    verbose : int, default=0

    Returns
    -------
    Report
        Save it with ``.save(path, overwrite=...)``.

    Raises
    ------
    FileNotFoundError
        For a folder that does not exist or holds no analysis output.

    Examples
    --------
    >>> from llmfmri.reports import make_report
    >>> make_report("runs/demo/analysis").save("runs/demo/analysis/report.html")  # doctest: +SKIP
    """
    a = load_analysis(analysis_dir, recording=recording, verbose=verbose)
    s = a.summary
    model = (s.get("model") or (s.get("settings") or {}).get("model")
             or (a.recording.identity.get("model_id") if a.recording else None)
             or next((_lesion_sidecar(b)["settings"].get("model") for b, _ in a.lesions
                      if _lesion_sidecar(b)), None))
    paradigm_name = s.get("paradigm") or (a.recording.task if a.recording else None)
    subtitle = [f"model {model or 'unknown'}, paradigm {paradigm_name or 'unknown'}",
                f"analysis folder {a.path}"]
    if s.get("inference_description"):
        subtitle.append(f"inference: {s['inference']} ({s['inference_description']})")
    rep = Report(title or f"llmfmri report: {paradigm_name or a.path.name}", subtitle=subtitle)

    logger.debug("report: summary")
    tasks = _tasks_table(a)
    if not tasks.empty:
        thr = (f"{s.get('correction', 'fdr')} <= {s.get('alpha', 0.05)}" if s else "")
        rep.add_table(tasks, section="Summary",
                      caption=f"One network per task: task > control, {thr}, positive tail."
                      if thr else None)
    if "identification" in s:
        i = s["identification"]
        rep.add_text(f"Identification of held-out blocks: accuracy {i['accuracy']:.3f} "
                     f"(chance {i['chance']:.3f}), permutation p = {i['p_value']:.3g} "
                     f"({i.get('n_permutations')} permutations).", section="Summary")
    for problem in a.problems:
        rep.add_text(problem, section="Summary", note=True)

    if a.recording is not None and a.recording.paradigm_path.exists():
        logger.debug("report: paradigm")
        from ..paradigm import load_paradigm

        try:
            rep.add_paradigm(load_paradigm(a.recording.paradigm_path))
        except ValueError as err:  # a paradigm of an older schema: show the file
            rep.add_text(f"The paradigm file could not be read ({err}).", section="Paradigm",
                         note=True)
            rep.add_code(a.recording.paradigm_path.read_text()[:4000], section="Paradigm")

    logger.debug("report: design matrices")
    if a.designs:
        rep.add_design_matrices(a.designs)
    elif a.recording is not None and a.recording.runs:
        from ..design import make_design_matrix

        designs = {}
        for run in a.recording.runs:
            if a.recording.is_complete(run):
                designs[f"run {run}"] = make_design_matrix(a.recording.events(run),
                                                           n_frames=a.recording.n_frames(run))
        rep.add_design_matrices(
            designs, caption="The token-level design of each run, as FirstLevelGLM builds it "
            "with its defaults (a boxcar per condition, a linear drift, a constant). Prompt-level "
            "maps (the default inference) summarise each prompt and test across prompts instead.")

    for task, zmap in a.maps.items():
        logger.debug("report: contrast %s", task)
        net = a.networks.get(task)
        thr = threshold if threshold is not None else _display_threshold(net)
        if thr is not None and threshold is None:
            caption = (f"Units with |z| >= {thr:.2f} (the smallest z of the network "
                       f"{net.describe()}); negative z beyond -{thr:.2f} are shown too.")
        elif thr is None:
            caption = "No unit survives the threshold: the map is shown unthresholded."
        else:
            caption = f"Units with |z| >= {thr:g}."
        rep.add_contrast(zmap, threshold=thr, title=f"{task}: {zmap.contrast}", network=net,
                         mosaic=mosaic, caption=caption)

    if a.networks:
        logger.debug("report: networks")
        rep.add_networks(a.networks, caption="Units per network; the threshold and the "
                                             "inference behind each network.")
    if "overlap" in a.tables:
        logger.debug("report: overlap")
        rep.add_overlap(a.tables["overlap"], caption="Dice of each pair of networks; marks "
                        "compare it with random networks of the same units per layer.")
        rep.add_table(a.tables["overlap"], section="Overlap", max_rows=None)
    elif "overlap-dice" in a.tables:
        rep.add_overlap(a.tables["overlap-dice"])
    if "repeatability" in a.tables:
        logger.debug("report: repeatability")
        rep.add_repeatability(a.tables["repeatability"],
                              caption="Mean over pairs of runs: maps of a task from different "
                                      "runs (within) against maps of other tasks (across).")
    if "identification-confusion" in a.tables:
        logger.debug("report: decoding")
        ident = s.get("identification", {})
        rep.add_decoding(a.tables["identification-confusion"],
                         accuracy=ident.get("accuracy"), chance=ident.get("chance"),
                         p_value=ident.get("p_value"),
                         caption="Each held-out block is assigned to the network (defined "
                                 "without its run) whose units are most active in it.")
        if "identification" in a.tables:
            rep.add_details("Predictions of every held-out block",
                            [_table(a.tables["identification"])], section="Decoding")

    for behaviour, summary in a.lesions:
        logger.debug("report: lesion %s", behaviour)
        where = behaviour.parent.relative_to(a.path)
        name = behaviour.name[: -len("-behaviour.tsv")]
        label = name if str(where) == "." else f"{where}/{name}"
        sidecar = _lesion_sidecar(behaviour)
        lesion_label = (sidecar.get("lesion") or {}).get("label") or label
        try:
            rep.add_lesion(behaviour, summary, title=f"{label}", label=lesion_label,
                           caption=f"{behaviour.relative_to(a.path)}: intact (black), the "
                                   "lesion (red, interval over items) and every control draw "
                                   "(points; bars: their median).")
        except DataError as err:
            rep.add_text(f"{behaviour.name} could not be plotted: {err}", section="Lesions",
                         note=True)
            continue
        if sidecar:
            settings = json.dumps(sidecar["settings"], indent=1, default=str)
            rep.add_details(f"Settings of {label}", [f"<pre>{html.escape(settings)}</pre>"],
                            section="Lesions")

    if a.recording is not None and max_frames and a.maps:
        logger.debug("report: time courses")
        if hasattr(a.recording, "frames"):
            _add_time_courses(rep, a, max_frames)
        else:
            rep.add_text("The time courses read a few columns of the recorded frames: pass "
                         "recording=llmfmri.load_recording(...) to make_report (the `llmfmri "
                         "report` and `llmfmri run` commands do).", section="Time courses",
                         note=True)

    logger.debug("report: provenance")
    rep.add_provenance(_provenance(a))
    made_by = command or s.get("command") or next(
        (_lesion_sidecar(b).get("command") for b, _ in a.lesions
         if _lesion_sidecar(b).get("command")), None)
    rep.add_command(made_by or "not recorded (summary.json has no 'command')",
                    title="Analysis", section="Command")
    rep.add_command(f"llmfmri report {a.path}", title="This report", section="Command")
    logger.info("report of %s: %d sections (%s)", a.path, len(rep.sections),
                ", ".join(rep.sections))
    return rep


def _table(df):
    from ._html import table_html

    return table_html(df, max_rows=None)


def _add_time_courses(rep, a, max_frames):
    from ..plotting import TimeCourseDisplay

    rec = a.recording
    runs = [r for r in rec.runs if rec.is_complete(r)]
    if not runs:
        return
    picks = {}
    for task, zmap in list(a.maps.items())[:8]:
        col = int(np.nanargmax(zmap.values))
        row = rec.units.table.iloc[col]
        picks[f"{task}: layer {row['layer']}, unit {row['index']} "
              f"(z = {zmap.values[col]:.1f})"] = col
    n = min(int(max_frames), rec.n_frames(runs[0]))
    try:
        disp = TimeCourseDisplay.from_recording(
            rec, picks, run=runs[0], frames=n,
            title=f"run {runs[0]}, first {n} frames: the unit of largest z of each contrast")
    except (OSError, ValueError) as err:
        warn(f"The time courses could not be read ({err}); the report has none.")
        return
    rep.add_figure(disp.plot(), section="Time courses",
                   alt="time courses of the top unit of each contrast",
                   caption="Activation (z-scored over the frames shown) with condition blocks "
                           "shaded; only these columns and frames were read from the recording.")


def default_report_path(analysis_dir):
    """``OUT/analysis/report.html``."""
    return _resolve_dir(analysis_dir) / REPORT_NAME
