"""Running a sweep: each cell a recording plus its analysis, in this process or as Ray tasks."""

from __future__ import annotations

import json
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .._utils import atomic_write_json, logger, package_versions, progress_bar, use_log_level
from ._spec import Sweep, load_sweep

__all__ = ["run_sweep", "run_cell", "SweepRun", "cell_dir", "cell_status"]

CELL_FILE = "cell.json"


def cell_dir(out, cell):
    """``OUT/cells/<label>``: the cell's own recording folder (the BIDS layout of ``record``)."""
    return Path(out) / "cells" / cell.label


def cell_status(out, cell):
    """The cell's ``cell.json`` as a dict (``{}`` when it has not started)."""
    path = cell_dir(out, cell) / CELL_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _resolve_model(value, base_dir):
    if value in (None, "default"):
        return None
    path = Path(base_dir) / value
    if not Path(value).is_absolute() and path.exists():
        return str(path)
    return value


def _paradigm(sweep, seed):
    from ..paradigm import library_paradigms, load_paradigm

    library = library_paradigms()
    source = sweep.paradigm
    if source in library:
        source = library[source]
    elif not Path(source).is_absolute():
        source = Path(sweep.base_dir) / source
    paradigm = load_paradigm(source)
    if not sweep.generation and seed is None:
        return paradigm
    spec = paradigm.to_dict()
    gen = dict(spec.get("generation") or {})
    gen.update(sweep.generation)
    if seed is not None:
        gen["seed"] = int(seed)
    spec["generation"] = gen
    # a dict paradigm resolves nothing against a folder: prompts are inline in to_dict()
    return load_paradigm(spec)


def run_cell(sweep, cell, out, *, verbose=0):
    """Record one cell and run its steps; write ``cell.json``; never raise for the cell's failure.

    Parameters
    ----------
    sweep : Sweep or dict
        The sweep (a dict from :meth:`Sweep.to_dict` when shipped to a Ray worker).
    cell : Cell or dict
    out : str or Path
        The sweep's output folder.

    Returns
    -------
    dict
        The cell's status record (``status``: ``"complete"`` or ``"failed"``, ``error``,
        ``seconds``, ``params``; ``lesion`` / ``truncation``: what was applied;
        ``behaviour``: ``<measure>_<set>`` values of the behaviour step), also written to
        ``OUT/cells/<label>/cell.json``.
    """
    from ._spec import Cell

    if isinstance(sweep, dict):
        sweep = _sweep_from_dict(sweep)
    if isinstance(cell, dict):
        cell = Cell(**cell)
    folder = cell_dir(out, cell)
    folder.mkdir(parents=True, exist_ok=True)
    status = {"cell": cell.label, "index": cell.index, "params": cell.params,
              "status": "running", "host": platform.node(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": list(sweep.steps)}
    atomic_write_json(folder / CELL_FILE, status, overwrite=True)
    t0 = time.perf_counter()
    try:
        from threadpoolctl import threadpool_limits

        # the same arithmetic in every process (a Ray worker or this one): torch and BLAS
        # use num_cpus threads, so local and Ray cells give identical numbers
        threads = max(1, int(sweep.resources.get("num_cpus") or 1))
        with use_log_level(verbose), threadpool_limits(limits=threads):
            status.update(_run_steps(sweep, cell, folder, threads))
        status.update(status="complete")
    except Exception as exc:  # noqa: BLE001 - a failing cell is reported, the others go on
        status.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=20))
        logger.warning("sweep %s: cell %s failed: %s: %s", sweep.name, cell.label,
                       type(exc).__name__, exc)
    status.update(seconds=round(time.perf_counter() - t0, 2),
                  finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), versions=_versions())
    atomic_write_json(folder / CELL_FILE, status, overwrite=True)
    return status


def _run_steps(sweep, cell, folder, threads):
    """Load the cell's model, enter its lesion, record (and analyse), score behaviour.

    Returns what goes into ``cell.json`` besides the status: ``lesion`` /
    ``truncation`` (what was applied) and ``behaviour`` (``<measure>_<set>`` values).
    """
    import contextlib

    import torch

    from ..main import run_pipeline
    from ..models import load_model
    from ..recording import record
    from ._lesions import enter_lesions, score_cell_behaviour

    torch.set_num_threads(threads)
    params = cell.params
    paradigm = _paradigm(sweep, params.get("seed"))
    model = _load_quietly(load_model, _resolve_model(params.get("model"), sweep.base_dir),
                          revision=params.get("revision"))
    extra = {}
    # the lesion is active for every step of the cell; closing the stack restores the model
    with contextlib.ExitStack() as stack:
        extra.update(enter_lesions(stack, model, params, sweep.base_dir))
        if "networks" in sweep.steps:
            a = sweep.analysis
            run_pipeline(paradigm, model=model, out=folder, sites=list(sweep.sites),
                         inference=a["inference"], alpha=a["alpha"],
                         correction=a["correction"], n_permutations=a["n_permutations"],
                         random_state=a["random_state"], overwrite=True, report=False,
                         verbose=0)
        else:
            # overwrite: the cell's folder holds cell.json (no recording yet), which record
            # would refuse; a recording of this very cell is resumed from its journal
            record(model, paradigm, sites=list(sweep.sites), out=folder, overwrite=True,
                   progress=False)
        if "behaviour" in sweep.steps:
            extra["behaviour"] = score_cell_behaviour(model, sweep.behaviour, sweep.base_dir,
                                                      folder)
    return extra


def _load_quietly(load_model, name, **kwargs):
    """Load a cell's model without transformers' per-file progress bars (one per cell would
    bury the sweep's own progress); the bars' setting is put back afterwards."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load_model(name, **kwargs)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _versions():
    return package_versions(("llmfmri", "torch", "transformers", "numpy", "ray"))


def _sweep_from_dict(d):
    d = dict(d)
    return Sweep(name=d["name"], paradigm=d["paradigm"], generation=d.get("generation", {}),
                 sites=tuple(d.get("sites", ("resid_post",))), axes=d.get("axes", {}),
                 steps=tuple(d.get("steps", ("record", "networks"))),
                 analysis=d.get("analysis", {}), resources=d.get("resources", {}),
                 group=d.get("group", {}), behaviour=d.get("behaviour", {}),
                 description=d.get("description", ""),
                 source=d.get("source", "<dict>"), base_dir=d.get("base_dir", "."))


@dataclass(frozen=True)
class SweepRun:
    """What :func:`run_sweep` did: one status record per cell.

    Attributes
    ----------
    sweep : Sweep
    out : Path
    statuses : list of dict
        ``cell.json`` of every cell, in the sweep's order.
    skipped : list of str
        Cells already complete before this call (not recomputed).
    seconds : float
    executor : str
        ``"local"`` or ``"ray"``.
    """

    sweep: Sweep
    out: Path
    statuses: list
    skipped: list
    seconds: float
    executor: str

    @property
    def failed(self):
        """Labels of the cells that failed."""
        return [s["cell"] for s in self.statuses if s.get("status") != "complete"]

    @property
    def complete(self):
        """Whether every cell is complete."""
        return not self.failed


def run_sweep(sweep, out, *, executor="local", address=None, overwrite=False, verbose=1):
    """Run every cell of a sweep that is not complete yet.

    Parameters
    ----------
    sweep : Sweep, str, Path or dict
        A sweep or a sweep file (see :func:`load_sweep`).
    out : str or Path
        Output folder: ``sweep.json``, ``cells/<label>/`` (a recording folder with its
        ``analysis/`` and ``cell.json`` each).
    executor : {"local", "ray"}, default="local"
        ``"local"``: cells one after another in this process. ``"ray"``: each cell a
        Ray task with the sweep's ``resources`` (``num_cpus``, ``num_gpus``), on the
        Ray runtime already initialised in this process, or the one at ``address``.
    address : str, optional
        With ``executor="ray"``: ``"auto"`` (a running local cluster) or
        ``"ray://host:10001"``; default: start a local runtime.
    overwrite : bool, default=False
        Run into a folder that holds a different sweep (its complete cells are kept
        only when their parameters match).
    verbose : int, default=1
        Progress across cells (done / running / failed).

    Returns
    -------
    SweepRun

    Raises
    ------
    FileExistsError
        When ``out`` holds a different sweep and ``overwrite`` is False.
    ImportError
        For ``executor="ray"`` without Ray installed (``pip install 'llmfmri[ray]'``).
    """
    from .._utils import check_option

    check_option("executor", executor, ("local", "ray"))
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out = Path(out)
    _check_folder(sweep, out, overwrite)
    cells = sweep.cells()
    t0 = time.perf_counter()
    with use_log_level(verbose):
        skipped = [c.label for c in cells if cell_status(out, c).get("status") == "complete"
                   and cell_status(out, c).get("params") == c.params]
        todo = [c for c in cells if c.label not in set(skipped)]
        logger.info("sweep %s: %d cells (%d complete, %d to run) with %s", sweep.name,
                    len(cells), len(skipped), len(todo), executor)
        if executor == "local":
            _run_local(sweep, todo, out, verbose)
        else:
            _run_ray(sweep, todo, out, address, verbose)
    statuses = [cell_status(out, c) for c in cells]
    run = SweepRun(sweep=sweep, out=out, statuses=statuses, skipped=skipped,
                   seconds=time.perf_counter() - t0, executor=executor)
    if run.failed:
        logger.warning("sweep %s: %d of %d cells failed: %s", sweep.name, len(run.failed),
                       len(cells), run.failed)
    return run


def _check_folder(sweep, out, overwrite):
    meta = out / "sweep.json"
    if meta.exists():
        old = json.loads(meta.read_text())
        same = {k: v for k, v in old.items() if k != "source"} == \
            {k: v for k, v in sweep.to_dict().items() if k != "source"}
        if not same and not overwrite:
            raise FileExistsError(
                f"{out} holds another sweep ({old.get('name')!r}, from {old.get('source')}); "
                "choose another --out, or pass overwrite=True (CLI: --overwrite) to run this "
                "one there (cells whose parameters match are kept)."
            )
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not a sweep folder; choose an empty or new "
                              "folder, or pass overwrite=True.")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(meta, sweep.to_dict(), overwrite=True)


def _run_local(sweep, todo, out, verbose):
    bar = progress_bar(total=len(todo), desc=f"sweep {sweep.name}", unit="cell",
                       verbose=verbose)
    failed = 0
    try:
        for k, cell in enumerate(todo):
            status = run_cell(sweep, cell, out, verbose=0)
            failed += status["status"] != "complete"
            bar.update(1)
            logger.info("sweep %s: cell %s %s in %.0f s (%d done, 0 running, %d failed, %d "
                        "to go)", sweep.name, cell.label, status["status"], status["seconds"],
                        k + 1 - failed, failed, len(todo) - k - 1)
    finally:
        bar.close()


def _run_ray(sweep, todo, out, address, verbose):
    try:
        import ray
    except ImportError:
        raise ImportError("executor='ray' needs Ray: pip install 'llmfmri[ray]' (or run the "
                          "sweep with --local).") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=verbose >= 2)
    res = sweep.resources
    task = ray.remote(num_cpus=res.get("num_cpus", 1), num_gpus=res.get("num_gpus", 0),
                      max_retries=0)(run_cell)
    payload = sweep.to_dict()
    refs = {task.remote(payload, {"label": c.label, "params": c.params, "index": c.index},
                        str(out)): c for c in todo}
    pending = list(refs)
    done = failed = 0
    bar = progress_bar(total=len(todo), desc=f"sweep {sweep.name} (ray)", unit="cell",
                       verbose=verbose)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                cell = refs[ref]
                try:
                    status = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker itself died
                    status = {"cell": cell.label, "params": cell.params, "status": "failed",
                              "error": f"{type(exc).__name__}: {exc}"}
                    atomic_write_json(cell_dir(out, cell) / CELL_FILE, status, overwrite=True)
                if status.get("status") == "complete":
                    done += 1
                else:
                    failed += 1
                bar.update(1)
                logger.info("sweep %s: cell %s %s (%d done, %d running, %d failed)", sweep.name,
                            cell.label, status.get("status"), done, len(pending), failed)
    finally:
        bar.close()
