"""FirstLevelGLM: a scikit-learn estimator over the runs of a recording."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import (check_option, check_positive_int, did_you_mean, logger, renamed,
                      with_verbose)
from .._utils.estimator import BaseEstimator, check_is_fitted
from ..design import check_design_matrix, check_events, events_per_frame, make_design_matrix
from ..exceptions import ContrastError, DataError, DesignMatrixError
from ._contrast import compute_fixed_effects, contrast_matrix
from ._correct import DesignBasis, GroupShuffler, PermutationResult, max_t_null
from ._data import as_2d, as_run_list, recording_runs
from ._engine import run_glm
from ._unitmap import OUTPUT_TYPES, contrast_to_maps

__all__ = ["FirstLevelGLM"]


class _EventShuffler:
    """Permute condition labels between blocks (or prompts) in the events; rebuild the design."""

    def __init__(self, events, by, build, columns, run_label):
        if by not in events.columns:
            raise DataError(
                f"Permutation by {by!r} needs an events column {by!r}{run_label}, but the events "
                f"have {list(events.columns)}." + did_you_mean(by, events.columns)
            )
        if "trial_type" not in events.columns:
            raise DataError(f"Permutation needs a 'trial_type' events column{run_label}.")
        ev = events[events["trial_type"].notna()]
        labels = {}
        for g, rows in ev.groupby(by, sort=False):
            kinds = pd.unique(rows["trial_type"])
            if len(kinds) != 1:
                raise DataError(
                    f"{by} {g!r}{run_label} holds several trial types {list(kinds)}; permuting "
                    f"{by} labels needs one condition per {by}."
                )
            labels[g] = kinds[0]
        if len(labels) < 2:
            raise DataError(
                f"Permutation needs at least 2 groups ({by}){run_label}, got {len(labels)}."
            )
        self.groups = list(labels)
        self.labels = np.array([labels[g] for g in self.groups], dtype=object)
        self.events = events
        self.by = by
        self.build = build
        self.columns = columns
        self.n_groups = len(self.groups)

    def design(self, perm):
        mapping = dict(zip(self.groups, self.labels[perm]))
        ev = self.events.copy()
        has = ev["trial_type"].notna() & ev[self.by].isin(mapping)
        ev.loc[has, "trial_type"] = ev.loc[has, self.by].map(mapping)
        X = self.build(ev)
        return X[self.columns].to_numpy(dtype=np.float64)


class FirstLevelGLM(BaseEstimator):
    """Mass-univariate first-level GLM over the runs of a recording (nilearn's FirstLevelModel).

    ``__init__`` only stores the arguments; the work is in :meth:`fit`.

    Parameters
    ----------
    noise_model : {"ar1", "ols"}, default="ar1"
        Temporal noise model (see :func:`run_glm`).
    hrf_model : None or str, default=None
        ``None``: boxcar regressors (token time has no haemodynamics); or a
        nilearn HRF model name (see :func:`llmfmri.make_design_matrix`).
    drift_model : {"polynomial", "cosine", None}, default="polynomial"
    drift_order : int, default=1
    high_pass : float, default=0.01
        Cosine drift cut-off in cycles per frame.
    conditions : list of str, optional
        Trial types to model (others are baseline).
    confounds : str, DataFrame or list, optional
        Confounds for every run, e.g. ``["position", "logprob"]`` (see
        :func:`llmfmri.make_design_matrix`); per-run confounds can be given
        to :meth:`fit`.
    bins : int or None, default=None
        AR(1) coefficient binning: ``None`` exact per unit, ``100`` as nilearn.
    first_frame : {"keep", "scale", "drop"}, default="keep"
        AR(1) treatment of the first frame of each run.
    bias_correction : bool, default=True
        Correct the AR(1) coefficients for the bias of the Yule-Walker
        estimate on residuals (``False``: nilearn's estimator).
    chunk_size : int, optional
        Units per read block.
    n_jobs : int, default=1
        Threads (see :func:`run_glm`).
    verbose : int, default=0
        Log progress (INFO) for this estimator's calls when > 0 (see
        :func:`llmfmri.set_verbose`).

    Attributes
    ----------
    design_matrices_ : list of pandas.DataFrame
    results_ : list of GLMResults
        One per run.
    units_ : UnitSpace or None
    runs_ : list
        Run labels.
    events_ : list of pandas.DataFrame or None
        The events of each run (validated), or None for runs given as designs.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from llmfmri.glm import FirstLevelGLM
    >>> rng = np.random.default_rng(0)
    >>> ev = pd.DataFrame({"onset": np.arange(80), "duration": 1,
    ...                    "trial_type": np.repeat(["a", "b"] * 4, 10)})
    >>> Y = rng.standard_normal((80, 5)); Y[ev.trial_type == "a", 0] += 1.0
    >>> glm = FirstLevelGLM(noise_model="ols").fit(Y, events=ev)
    >>> glm.design_matrices_[0].columns.tolist()
    ['a', 'b', 'drift_1']
    >>> z = glm.compute_contrast("a - b")
    >>> bool(z.values[0] > 3)
    True
    """

    def __init__(self, noise_model="ar1", *, hrf_model=None, drift_model="polynomial",
                 drift_order=1, high_pass=0.01, conditions=None, confounds=None, bins=None,
                 first_frame="keep", bias_correction=True, chunk_size=None, n_jobs=1,
                 verbose=0):
        self.noise_model = noise_model
        self.hrf_model = hrf_model
        self.drift_model = drift_model
        self.drift_order = drift_order
        self.high_pass = high_pass
        self.conditions = conditions
        self.confounds = confounds
        self.bins = bins
        self.first_frame = first_frame
        self.bias_correction = bias_correction
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _build(self, events, n_frames, confounds):
        return make_design_matrix(
            events, n_frames=n_frames, hrf_model=self.hrf_model, drift_model=self.drift_model,
            drift_order=self.drift_order, high_pass=self.high_pass, conditions=self.conditions,
            confounds=confounds,
        )

    def _run_confounds(self, conf):
        """``self.confounds`` plus a run's own confounds (one list)."""
        extra = self.confounds
        if conf is None:
            return extra
        base = [] if extra is None else (list(extra) if isinstance(extra, (list, tuple))
                                         else [extra])
        return base + [conf]

    # --------------------------------------------------------------------- fit
    @with_verbose
    def fit(self, run_data, events=None, design_matrices=None, *, confounds=None, units=None,
            runs=None):
        """Fit the GLM to every run.

        Parameters
        ----------
        run_data : Recording, array of shape (n_frames, n_units), or list of arrays
            A Recording (its runs, events and units are used) or arrays (numpy,
            zarr, dask), one per run.
        events : DataFrame or list of DataFrame, optional
            Events per run (in frames); taken from the Recording by default.
        design_matrices : DataFrame or list of DataFrame, optional
            Ready-made designs (then ``events`` and the design arguments are
            ignored).
        confounds : DataFrame, array or list (one per run), optional
            Per-run confound regressors, added to ``self.confounds``.
        units : UnitSpace, optional
            Units of array data (a Recording brings its own).
        runs : list, optional
            Subset of the Recording's runs.

        Returns
        -------
        self

        Raises
        ------
        DataError
            For runs of different widths, units that do not match, missing events.
        llmfmri.exceptions.DesignMatrixError
            For a design that cannot be fitted (names the collinear columns).
        """
        check_option("noise_model", self.noise_model, ("ols", "ar1"))
        data, evs, runs, rec_units, shapes = self._collect(run_data, events, design_matrices,
                                                           runs)
        units = rec_units if units is None else units
        n_units = shapes[0][1]
        if units is not None and getattr(units, "n_units", None) != n_units:
            raise DataError(
                f"units (a UnitSpace of {getattr(units, 'n_units', None)} units) does not match "
                f"the data's {n_units} units."
            )
        confs = as_run_list(confounds, len(data), "confounds")
        dms = as_run_list(design_matrices, len(data), "design_matrices")
        designs = []
        for k, (dm, conf) in enumerate(zip(dms, confs)):
            n_frames = shapes[k][0]
            if dm is not None:
                designs.append(check_design_matrix(dm, name=f"design_matrices[{k}]",
                                                   n_frames=n_frames))
            elif evs[k] is None:
                raise DataError(
                    f"Run {runs[k]} has neither events nor a design matrix; pass events=... "
                    "or design_matrices=...."
                )
            else:
                try:
                    designs.append(self._build(evs[k], n_frames, self._run_confounds(conf)))
                except DesignMatrixError as exc:
                    if len(data) == 1:
                        raise
                    raise DesignMatrixError(f"Run {runs[k]}: {exc}") from exc
        results = []
        for k, (y, dm) in enumerate(zip(data, designs)):
            logger.info("FirstLevelGLM: fitting run %s (%d frames x %d units, %s)", runs[k],
                        shapes[k][0], n_units, self.noise_model)
            results.append(run_glm(y, dm, noise_model=self.noise_model, bins=self.bins,
                                   first_frame=self.first_frame,
                                   bias_correction=self.bias_correction,
                                   chunk_size=self.chunk_size, n_jobs=self.n_jobs,
                                   verbose=self.verbose))
        self.design_matrices_ = designs
        self.results_ = results
        self.units_ = units
        self.runs_ = runs
        self.events_ = evs
        self._data = data
        self._confs = confs
        return self

    @staticmethod
    def _collect(run_data, events, design_matrices, runs):
        """Runs of data (2-D, same width) and their validated events."""
        data, evs, runs, units = recording_runs(run_data, runs, events=events)
        if design_matrices is not None and events is None:
            evs = [None] * len(data)  # ready-made designs: a Recording's events are not used
        shapes = []
        for k, y in enumerate(data):
            data[k], shape = as_2d(y, name=f"run_data[{k}]")
            shapes.append(shape)
        for k, (_, u) in enumerate(shapes):
            if u != shapes[0][1]:
                raise DataError(
                    f"All runs need the same units, but run {runs[k]} has {u} units and run "
                    f"{runs[0]} has {shapes[0][1]}."
                )
        evs = [None if ev is None else check_events(ev) for ev in evs]
        return data, evs, runs, units, shapes

    # ---------------------------------------------------------------- contrasts
    def _run_contrasts(self, contrast_def, stat_type):
        n = len(self.results_)
        per_run = (isinstance(contrast_def, (list, tuple)) and len(contrast_def) == n and n > 1
                   and all(not isinstance(c, str) for c in contrast_def))
        defs = list(contrast_def) if per_run else [contrast_def] * n
        out = []
        for k, (res, cdef) in enumerate(zip(self.results_, defs)):
            try:
                out.append(res.contrast(cdef, stat_type))
            except ContrastError as exc:
                if n > 1:
                    raise ContrastError(f"Run {self.runs_[k]}: {exc}") from exc
                raise
        return out

    def compute_contrast(self, contrast_def, stat_type=None, output_type="z_score", *,
                         precision_weighted=False):
        """Compute a contrast, with fixed effects across runs.

        Parameters
        ----------
        contrast_def : str, list of str, dict, array, or list of arrays (one per run)
            ``"medical_imaging - control"``; a list of expressions for an F test;
            a vector or matrix over the design columns.
        stat_type : {None, "t", "F"}
        output_type : {"z_score", "stat", "p_value", "effect_size", "effect_variance", "all"}
        precision_weighted : bool, default=False
            Fixed effects weighted by inverse variance (t only).

        Returns
        -------
        UnitMap, or dict of UnitMap for ``"all"``
        """
        check_is_fitted(self)
        check_option("output_type", output_type, OUTPUT_TYPES + ("all",))
        contrast = compute_fixed_effects(self._run_contrasts(contrast_def, stat_type),
                                         precision_weighted=precision_weighted)
        return contrast_to_maps(contrast, self.units_, output_type, inference="token")

    def contrast(self, contrast_def, stat_type=None, *, precision_weighted=False):
        """The fixed-effects :class:`Contrast` object itself (effect, variance, dof)."""
        check_is_fitted(self)
        return compute_fixed_effects(self._run_contrasts(contrast_def, stat_type),
                                     precision_weighted=precision_weighted)

    # ------------------------------------------------------------- permutations
    @with_verbose
    def permutation_test(self, contrast_def, *, by="block", n_permutations=1000, two_sided=True,
                         random_state=None, groups=None, n_perm=None):
        """Family-wise error by permutation max-T, exchanging block or prompt labels within runs.

        Parameters
        ----------
        contrast_def : str, dict or vector
            A t contrast.
        by : str, default="block"
            Events column whose groups of frames are exchanged (``"block"`` or
            ``"prompt_id"``).
        n_permutations : int, default=1000
            Permutations (scikit-learn's name; ``n_perm`` is its old name).
        two_sided : bool, default=True
        random_state : int or Generator, optional
        groups : list of arrays of shape (n_frames,), optional
            Per-frame group labels per run (instead of ``by``).

        Returns
        -------
        PermutationResult
            ``p_fwer``, ``stat`` (OLS t, fixed effects across runs), ``null_max``;
            ``.p_map()`` gives a UnitMap.

        Notes
        -----
        The statistic is the OLS t whatever ``noise_model``: exchanging whole
        blocks keeps the within-block autocorrelation, so the test needs no
        noise model. Boxcar designs permute the design columns directly; HRF
        designs are rebuilt from the permuted events.
        """
        check_is_fitted(self)
        n_perm = check_positive_int("n_permutations", renamed(
            "n_perm", n_perm, "n_permutations", n_permutations, default=1000))
        rng = np.random.default_rng(random_state)
        gs = as_run_list(groups, len(self._data), "groups")
        runs = []
        for k, (y, dm) in enumerate(zip(self._data, self.design_matrices_)):
            C, _, cname = contrast_matrix(contrast_def, dm.columns, "t")
            c_vec = C[0]
            basis, n_groups = self._permuted_designs(k, c_vec, by, gs[k])
            runs.append((y, basis, n_groups, float(dm.shape[0] - dm.shape[1])))
        stat, null_max = max_t_null(runs, c_vec, n_perm=int(n_perm), two_sided=two_sided,
                                    rng=rng, chunk_size=self.chunk_size, verbose=self.verbose)
        return PermutationResult(stat, null_max, two_sided=two_sided, contrast=cname,
                                 units=self.units_, dof=sum(r[3] for r in runs),
                                 by=by if groups is None else None)

    def _permuted_designs(self, k, c_vec, by, groups):
        """Run ``k``'s designs under permutations, as a basis provider for ``max_t_null``.

        Boxcar designs permute the contrast's columns between groups of frames
        (:class:`GroupShuffler`, computed from group sums); HRF designs are
        rebuilt from events whose condition labels are permuted
        (:class:`DesignBasis`).
        """
        dm, ev = self.design_matrices_[k], self.events_[k]
        label = f" (run {self.runs_[k]})" if len(self._data) > 1 else ""
        cols = list(np.flatnonzero(c_vec))
        names = [str(c) for c in dm.columns]
        X = dm.to_numpy(dtype=np.float64)
        if groups is None and ev is None:
            raise DataError(
                f"Run {self.runs_[k]} was fitted from a design matrix without events; pass "
                "groups=[per-frame labels per run] to permute."
            )
        if self.hrf_model is None or groups is not None:
            if groups is not None:
                g = np.asarray(groups)
            else:
                if by not in ev.columns:
                    raise DataError(
                        f"Permutation by {by!r} needs an events column {by!r}{label}, but "
                        f"the events have {list(ev.columns)}." + did_you_mean(by, ev.columns)
                    )
                g, _ = events_per_frame(ev, by, dm.index.to_numpy(dtype=float))
            sh = GroupShuffler(X, g, cols, names, label)
            return sh, sh.n_groups
        extra = self._run_confounds(self._confs[k])
        n_frames = X.shape[0]
        cond_cols = [str(c) for c in make_design_matrix(
            ev, n_frames=n_frames, hrf_model=self.hrf_model, drift_model=None,
            conditions=self.conditions, constant=False, check=False).columns]
        sh = _EventShuffler(ev, by, lambda e: self._build(e, n_frames, extra).reindex(
            columns=names), cond_cols, label)
        cidx = [names.index(c) for c in cond_cols]

        def fn(perm):
            if perm is None:
                return X
            Xp = X.copy()
            Xp[:, cidx] = sh.design(perm)
            return Xp
        return DesignBasis(fn), sh.n_groups

    # ------------------------------------------------------------- statsmodels
    def fit_statsmodels(self, units=None, *, model="ols", **kwargs):
        """Refit some units with any statsmodels model, run by run.

        Parameters
        ----------
        units : array of int, optional
            Columns to refit (e.g. ``glm.units_.select(layers=3)``); all by default.
        model, **kwargs
            See :func:`llmfmri.glm.fit_statsmodels`.

        Returns
        -------
        list of StatsmodelsGLM
            One per run, with the same design matrices.
        """
        check_is_fitted(self)
        from ._statsmodels import fit_statsmodels

        return [fit_statsmodels(y, dm, units=units, model=model, **kwargs)
                for y, dm in zip(self._data, self.design_matrices_)]
