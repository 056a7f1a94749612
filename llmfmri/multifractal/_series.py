"""NeuroMFA over a series of checkpoints: spectra, alpha0, width and E(t)."""

from __future__ import annotations

import gc
import re
import time
from pathlib import Path

import numpy as np

from .._utils import check_option, check_positive_int, logger, warn, with_verbose
from .._utils.estimator import BaseEstimator, check_is_fitted
from ..exceptions import MultifractalError, MultifractalWarning
from ..io import OutputSet, read_tsv
from ._emergence import degree_of_emergence
from ._network import neuron_networks
from ._spectrum import _check_q, multifractal_spectrum

__all__ = ["NeuroMFA", "resolve_checkpoints", "read_trajectory"]

_STEP_RE = re.compile(r"(?:step|checkpoint|ckpt|iter)[-_]?(\d+)", re.IGNORECASE)
_FILTERS = (None, "f_nonpositive", "alpha_start", "both")


def _infer_step(text):
    m = _STEP_RE.search(str(text))
    return int(m.group(1)) if m else None


def _is_checkpoint_dir(path):
    return (path / "config.json").is_file()


def read_trajectory(path):
    """Read a training trajectory table (``trajectory.tsv``) as a DataFrame.

    ``path`` is the file or the folder holding it (as written by
    ``scripts/train_tiny_llama.py``): one row per checkpoint with at least a ``step``
    column, and typically ``train_loss`` and ``val_loss``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "trajectory.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"No trajectory table at {str(path)!r} (expected trajectory.tsv).")
    table = read_tsv(path)
    if "step" not in table.columns:
        raise MultifractalError(
            f"{path} has no 'step' column; its columns are {list(table.columns)}."
        )
    return table


def resolve_checkpoints(checkpoints, *, revisions=None, steps=None):
    """Turn the user's checkpoint spec into ``[(label, step, source, revision)]``.

    Parameters
    ----------
    checkpoints : str, Path, model, or list of these
        Local checkpoint directories (each with ``config.json``), Hugging Face ids,
        in-memory models (or per-block weight lists), or one *trajectory folder*
        whose ``step*/`` subdirectories are checkpoints (expanded in step order).
    revisions : list of str, optional
        Hub revisions (e.g. Pythia's ``"step0"``, ``"step1000"``) of the single
        model named by ``checkpoints``.
    steps : list of int, optional
        Training step of each checkpoint; by default parsed from ``stepN`` /
        ``checkpoint-N`` in the revision or folder name, else the position.

    Returns
    -------
    items : list of tuple
        ``(label, step, source, revision)``.
    trajectory : Path or None
        The trajectory folder, when one was expanded.
    """
    trajectory = None
    if isinstance(checkpoints, (str, Path)):
        checkpoints = [checkpoints]
    elif not isinstance(checkpoints, (list, tuple)) or (
            checkpoints and isinstance(checkpoints, (list, tuple))
            and all(hasattr(c, "keys") for c in checkpoints)):
        checkpoints = [checkpoints]  # one model object or one weights list
    checkpoints = list(checkpoints)
    if not checkpoints:
        raise MultifractalError("checkpoints is empty: give at least one checkpoint.")
    items = []
    if revisions is not None:
        revisions = [str(r) for r in revisions]
        if len(checkpoints) != 1 or not isinstance(checkpoints[0], (str, Path)):
            raise MultifractalError(
                "With revisions, checkpoints must be a single model name or path "
                f"(e.g. 'EleutherAI/pythia-70m'), but got {len(checkpoints)} items."
            )
        if not revisions:
            raise MultifractalError("revisions is empty: give at least one revision.")
        name = str(checkpoints[0])
        items = [(f"{name}@{rev}", _infer_step(rev), name, rev) for rev in revisions]
    else:
        for c in checkpoints:
            if isinstance(c, (str, Path)):
                p = Path(c).expanduser()
                if p.is_dir() and not _is_checkpoint_dir(p):
                    subs = [s for s in p.iterdir() if s.is_dir() and _is_checkpoint_dir(s)]
                    if not subs:
                        raise MultifractalError(
                            f"{str(p)!r} is a folder but neither a checkpoint (no config.json) "
                            "nor a trajectory folder (no checkpoint subfolders with config.json)."
                        )
                    if len(checkpoints) == 1:
                        trajectory = p
                    subs.sort(key=lambda s: (_infer_step(s.name) is None,
                                             _infer_step(s.name) or 0, s.name))
                    items.extend((s.name, _infer_step(s.name), str(s), None) for s in subs)
                    continue
                label = p.name if p.is_dir() else str(c)
                items.append((label, _infer_step(label), str(p) if p.is_dir() else str(c), None))
            else:
                label = getattr(getattr(c, "config", None), "_name_or_path", None) or \
                    ("weights" if isinstance(c, (list, tuple)) else type(c).__name__)
                items.append((str(label), None, c, None))
    labels = [lab for lab, _, _, _ in items]
    if len(set(labels)) < len(labels):  # e.g. several in-memory models: make labels unique
        items = [(f"{lab}[{i}]", st, src, rev) for i, (lab, st, src, rev) in enumerate(items)]
    if steps is not None:
        steps = list(steps)
        if len(steps) != len(items):
            raise MultifractalError(
                f"steps has {len(steps)} values but there are {len(items)} checkpoints."
            )
        items = [(lab, int(st), src, rev) for (lab, _, src, rev), st in zip(items, steps)]
    elif any(st is None for _, st, _, _ in items):
        items = [(lab, i, src, rev) for i, (lab, _, src, rev) in enumerate(items)]
    return items, trajectory


def _load(source, revision, dtype, device):
    """Load one checkpoint for weight reading (no tokenizer needed)."""
    if not isinstance(source, (str, Path)):
        return source
    from ..models import load_model

    try:
        return load_model(str(source), revision=revision, dtype=dtype, device=device)
    except Exception as exc:  # a checkpoint folder without tokenizer files still has weights
        path = Path(source)
        if not (path.is_dir() and _is_checkpoint_dir(path)):
            raise
        logger.debug("load_model failed on %s (%s); loading weights only", path, exc)
        import torch
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(
            str(path), dtype=getattr(torch, dtype), local_files_only=True).eval()


class NeuroMFA(BaseEstimator):
    """NeuroMFA: multifractal analysis of neuron interaction networks over checkpoints.

    For each checkpoint, ``n_samples`` neuron interaction networks are sampled
    (the same neurons in every checkpoint: seed k for sample k), each gets a
    multifractal spectrum, and alpha0 and width are averaged over samples; then
    ``E(t) = (w(t)/w(t0)) ln(alpha0(t0)/alpha0(t))`` with t0 the first checkpoint.

    Parameters
    ----------
    n_neurons : int
        Neurons sampled per layer of neurons (published: 32; originally 64).
    n_mlp_neurons : int, optional
        Neurons sampled per MLP layer (default ``2 * n_neurons``).
    n_samples : int
        Networks sampled per checkpoint (published: 10), seeds ``0..n_samples-1``
        unless ``seeds`` is given.
    seeds : list of int, optional
        Explicit seeds (overrides ``n_samples``).
    q : array-like, optional
        Moment orders (default -3..3 step 0.1).
    min_distance, max_distance, decimals, min_edges, derivative, neighbourhood, empty_layers
        See :func:`multifractal_spectrum` (published: 1, 150, 0, 11 i.e. "> 10").
    spectrum_filter : {None, "f_nonpositive", "alpha_start", "both"}
        The reference's optional sample filters (modes 1-3): drop spectra with
        any f > 0, or whose alpha at the lowest q is not the largest (by 0.01).
        None (default) keeps all, as the reference's emergence script.
    dtype, device : str
        How checkpoints given by name or path are loaded (default float32 on CPU).
    verbose : bool or int, default=False
        Log progress per checkpoint (INFO) for this estimator's calls (see
        :func:`llmfmri.set_verbose`).

    Attributes
    ----------
    results_ : pandas.DataFrame
        One row per checkpoint: ``checkpoint, step, alpha0, alpha0_sd, width,
        width_sd, emergence, n_samples`` (+ trajectory columns such as ``val_loss``
        when a trajectory folder was given).
    samples_ : pandas.DataFrame
        One row per checkpoint and sample: ``alpha0, width, n_nodes, n_edges, r2_min, kept``.
    spectra_ : list of list of MultifractalSpectrum
        ``spectra_[i][k]``: checkpoint i, sample k.
    emergence_ : ndarray of shape (n_checkpoints,)
    steps_ : ndarray of shape (n_checkpoints,)

    Notes
    -----
    alpha0 (and so E) depends on the overall weight scale relative to the fixed
    distance window ``(min_distance, max_distance]``: rescaling every weight matrix
    moves alpha0 even if nothing else changes. On a tiny LLaMA trained from scratch,
    initial weights rescaled to the trained matrices' standard deviations reproduced
    98 % of E(t) (``docs/results/neuromfa.md``); compare trajectories with such a
    scale-matched control before reading E as organisation.

    Examples
    --------
    >>> from llmfmri.multifractal import NeuroMFA
    >>> revs = ["step0", "step1000", "step143000"]
    >>> mfa = NeuroMFA().fit("EleutherAI/pythia-70m-deduped", revisions=revs)  # doctest: +SKIP
    >>> mfa.results_[["step", "alpha0", "width", "emergence"]]  # doctest: +SKIP
    """

    def __init__(self, *, n_neurons=32, n_mlp_neurons=None, n_samples=10, seeds=None, q=None,
                 min_distance=1.0, max_distance=150.0, decimals=0, min_edges=11,
                 derivative="central", neighbourhood="edge", empty_layers="raise",
                 spectrum_filter=None, dtype="float32", device="cpu", verbose=False):
        self.n_neurons = n_neurons
        self.n_mlp_neurons = n_mlp_neurons
        self.n_samples = n_samples
        self.seeds = seeds
        self.q = q
        self.min_distance = min_distance
        self.max_distance = max_distance
        self.decimals = decimals
        self.min_edges = min_edges
        self.derivative = derivative
        self.neighbourhood = neighbourhood
        self.empty_layers = empty_layers
        self.spectrum_filter = spectrum_filter
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _seeds(self):
        if self.seeds is not None:
            seeds = [int(s) for s in self.seeds]
        else:
            seeds = list(range(check_positive_int("n_samples", self.n_samples,
                                                  error=MultifractalError)))
        if not seeds:
            raise MultifractalError("seeds is empty: give at least one seed.")
        return seeds

    def _spectrum_kwargs(self):
        return dict(q=self.q, min_distance=self.min_distance, max_distance=self.max_distance,
                    decimals=self.decimals, min_edges=self.min_edges, derivative=self.derivative,
                    neighbourhood=self.neighbourhood, empty_layers=self.empty_layers)

    def _keep(self, spec):
        mode = self.spectrum_filter
        ok = True
        if mode in ("f_nonpositive", "both"):
            ok &= bool(np.all(spec.f_alpha <= 1e-9))
        if mode in ("alpha_start", "both"):
            ok &= bool(spec.alpha.max() - spec.alpha[0] <= 0.01)
        return ok

    def analyse(self, model):
        """Spectra of the sampled networks of one model: list of MultifractalSpectrum."""
        nets = neuron_networks(model, n_neurons=self.n_neurons,
                               n_mlp_neurons=self.n_mlp_neurons, seeds=self._seeds())
        kw = self._spectrum_kwargs()
        return [multifractal_spectrum(net, **kw) for net in nets]

    # --------------------------------------------------------------------- fit
    @with_verbose
    def fit(self, checkpoints, *, revisions=None, steps=None, trajectory=None):
        """Analyse a series of checkpoints, in training order.

        Parameters
        ----------
        checkpoints : str, Path, model, or list of these
            Local checkpoint directories, Hugging Face ids (with ``revisions``),
            in-memory models or weight lists, or one trajectory folder (its
            ``step*`` subfolders, in step order; its ``trajectory.tsv`` losses are
            merged into ``results_``). See :func:`resolve_checkpoints`.
        revisions : list of str, optional
            Hub revisions of the one model named by ``checkpoints``, e.g.
            ``["step0", "step1000", "step143000"]`` for Pythia.
        steps : list of int, optional
            Training step of each checkpoint (default: parsed from names).
        trajectory : str or Path, optional
            A ``trajectory.tsv`` (or its folder) whose columns are merged into
            ``results_`` by ``step``.

        Returns
        -------
        self
        """
        import pandas as pd

        check_option("spectrum_filter", self.spectrum_filter, _FILTERS, error=MultifractalError)
        _check_q(self.q)
        seeds = self._seeds()
        items, traj_dir = resolve_checkpoints(checkpoints, revisions=revisions, steps=steps)
        step_values = [st for _, st, _, _ in items]
        if any(b < a for a, b in zip(step_values, step_values[1:])):
            warn(f"Checkpoint steps {step_values} are not in increasing order; E(t) uses the "
                 "first checkpoint as t0.", MultifractalWarning)
        spectra, rows = [], []
        t_start = time.perf_counter()
        for i, (label, step, source, rev) in enumerate(items):
            t0 = time.perf_counter()
            model = _load(source, rev, self.dtype, self.device)
            try:
                specs = self.analyse(model)
            except MultifractalError as exc:
                raise MultifractalError(f"Checkpoint {label!r} (step {step}): {exc}") from exc
            finally:
                if isinstance(source, (str, Path)):
                    del model
                    gc.collect()
            spectra.append(specs)
            for seed, sp in zip(seeds, specs):
                rows.append({"checkpoint": label, "step": step, "sample": seed,
                             "alpha0": sp.alpha0, "width": sp.width, "n_nodes": sp.n_nodes,
                             "n_edges": sp.n_edges, "r2_min": float(sp.r2.min()),
                             "kept": self._keep(sp)})
            logger.info("NeuroMFA %d/%d %s (step %s): alpha0 %.4f width %.4f [%.1fs]",
                        i + 1, len(items), label, step, np.mean([s.alpha0 for s in specs]),
                        np.mean([s.width for s in specs]), time.perf_counter() - t0)
        samples = pd.DataFrame(rows)
        kept = samples[samples["kept"]]
        agg = kept.groupby("checkpoint", sort=False).agg(
            alpha0=("alpha0", "mean"), alpha0_sd=("alpha0", "std"), width=("width", "mean"),
            width_sd=("width", "std"), n_samples=("alpha0", "size"))
        results = pd.DataFrame({"checkpoint": [lab for lab, _, _, _ in items],
                                "step": step_values})
        results = results.merge(agg, left_on="checkpoint", right_index=True, how="left")
        results["n_samples"] = results["n_samples"].fillna(0).astype(int)
        if (results["n_samples"] == 0).any():
            warn("spectrum_filter dropped every sample of checkpoint(s) "
                 f"{results.loc[results['n_samples'] == 0, 'checkpoint'].tolist()}; their "
                 "alpha0, width and E are NaN.", MultifractalWarning)
        results["emergence"] = degree_of_emergence(results["alpha0"], results["width"])
        traj = trajectory if trajectory is not None else traj_dir
        if traj is not None:
            table = read_trajectory(traj)
            extra = [c for c in table.columns if c not in results.columns or c == "step"]
            extra = [c for c in extra if c != "path"]
            results = results.merge(table[extra], on="step", how="left")
        self.results_ = results.reset_index(drop=True)
        self.samples_ = samples
        self.spectra_ = spectra
        self.steps_ = np.asarray(step_values)
        self.emergence_ = self.results_["emergence"].to_numpy()
        self.seeds_ = seeds
        self.checkpoints_ = [(lab, st, str(src) if isinstance(src, (str, Path)) else lab, rev)
                             for lab, st, src, rev in items]
        self.elapsed_s_ = time.perf_counter() - t_start
        return self

    # ------------------------------------------------------------ outputs
    def mean_spectra(self):
        """Sample-averaged spectra: ``(q_alpha, alpha, f_alpha)``.

        ``alpha`` and ``f_alpha`` have shape (n_checkpoints, n_alpha).
        """
        check_is_fitted(self)
        alpha = np.array([[s.alpha for s in specs] for specs in self.spectra_]).mean(axis=1)
        f = np.array([[s.f_alpha for s in specs] for specs in self.spectra_]).mean(axis=1)
        return self.spectra_[0][0].q_alpha, alpha, f

    def save(self, out_dir, *, overwrite=False):
        """Write the results to ``out_dir``.

        Files: ``neuromfa.tsv`` (one row per checkpoint), ``neuromfa_samples.tsv``
        (one row per checkpoint and sample), ``spectra.npz`` (``tau``, ``alpha``,
        ``f_alpha``, ``r2`` of shape (n_checkpoints, n_samples, n), with ``steps``,
        ``seeds``, ``q``, ``q_alpha``) and ``neuromfa.json`` (settings, checkpoints,
        versions). Existing files are not replaced unless ``overwrite=True``.
        """
        import io

        import scipy

        from .. import __version__

        check_is_fitted(self)
        out = Path(out_dir)
        files = OutputSet(out, overwrite=overwrite)
        files.add_tsv("neuromfa.tsv", self.results_)
        files.add_tsv("neuromfa_samples.tsv", self.samples_)

        def stack(attr):
            return np.array([[getattr(s, attr) for s in specs] for specs in self.spectra_])

        def spectra():
            s0 = self.spectra_[0][0]
            buf = io.BytesIO()
            np.savez_compressed(buf, steps=self.steps_, seeds=np.asarray(self.seeds_), q=s0.q,
                                q_alpha=s0.q_alpha, tau=stack("tau"), alpha=stack("alpha"),
                                f_alpha=stack("f_alpha"), r2=stack("r2"))
            return buf.getvalue()

        files.add("spectra.npz", spectra)
        params = {k: (list(v) if isinstance(v, (range, np.ndarray)) else v)
                  for k, v in self.get_params().items()}
        if params.get("q") is not None:
            params["q"] = np.asarray(params["q"]).tolist()
        files.add_json("neuromfa.json", {
            "method": "NeuroMFA (Xiao et al., ICLR 2025, arXiv 2402.09099) as implemented in "
                      "llmfmri.multifractal",
            "params": params,
            "checkpoints": [{"label": lab, "step": st, "source": src, "revision": rev}
                            for lab, st, src, rev in self.checkpoints_],
            "elapsed_s": round(self.elapsed_s_, 2),
            "versions": {"llmfmri": __version__, "numpy": np.__version__,
                         "scipy": scipy.__version__},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        files.write()
        return out

    def plot_spectra(self, ax=None, **kwargs):
        """f(alpha) per checkpoint (sample-averaged); see :func:`plot_spectra`."""
        from ._plotting import plot_spectra

        return plot_spectra(self, ax=ax, **kwargs)

    def plot_emergence(self, axes=None, **kwargs):
        """alpha0, width and E(t) against step; see :func:`plot_emergence`."""
        from ._plotting import plot_emergence

        return plot_emergence(self, axes=axes, **kwargs)
