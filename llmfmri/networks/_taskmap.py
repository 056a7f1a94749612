"""TaskMap: one contrast's statistic map under an inference that says what it generalises over."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._utils import check_option, check_positive_int, check_random_state, did_you_mean, \
    with_verbose
from ..exceptions import DataError
from ..glm import INFERENCES, FirstLevelGLM, SecondLevelGLM, UnitMap

__all__ = ["TaskMap", "task_map", "task_maps", "TAILS", "tail_p_values", "as_z_map"]

#: Which side of the statistic a network or a test looks at.
TAILS = ("positive", "negative", "two-sided")

#: The inferences :func:`task_map` can make (keys of ``llmfmri.glm.INFERENCES``).
MAP_INFERENCES = ("prompt", "permutation", "token")

_PROMPT_KWARGS = ("chunk_size", "covariates")


def tail_p_values(z, tail):
    """p values of z scores for one tail: upper, lower, or both (``2 * P(Z > |z|)``).

    Parameters
    ----------
    z : array of shape (n_units,)
        z scores (one-sided p preserved, as ``Contrast.z_score()`` makes them).
    tail : {"positive", "negative", "two-sided"}

    Returns
    -------
    ndarray of shape (n_units,)
    """
    from scipy import stats

    z = np.asarray(z, dtype=np.float64)
    if tail == "positive":
        return stats.norm.sf(z)
    if tail == "negative":
        return stats.norm.cdf(z)
    return np.minimum(2.0 * stats.norm.sf(np.abs(z)), 1.0)


@dataclass(frozen=True, eq=False)
class TaskMap:
    """A contrast map that knows how its statistics were made (see :func:`task_map`).

    Attributes
    ----------
    z : UnitMap
        z scores of the contrast (sign = direction), shape (n_units,). For
        ``inference="prompt"`` they come from the t across prompts (dof
        ``n_prompts - n_conditions``); for ``"token"`` from the fixed-effects
        t across runs of the token-level GLM; for ``"permutation"`` from the
        OLS t across runs (the permutation p values are in :attr:`p_fwer`).
    effect : UnitMap or None
        Contrast estimate (in the units of the activations), or None for a
        conjunction.
    inference : {"prompt", "permutation", "token"}
        A key of ``llmfmri.glm.INFERENCES``.
    contrast : str
        The contrast, e.g. ``"medical_imaging - control"``.
    dof : float
        Degrees of freedom of the t behind :attr:`z`.
    n_samples : int
        Prompts (``"prompt"``) or frames (``"token"``, ``"permutation"``) the
        map was estimated from.
    by : str or None
        Sampling unit exchanged or summarised (``"prompt_id"``, ``"block"``).
    p_fwer : UnitMap or None
        Family-wise error p values of the permutation max-T test
        (``correction="maxt"``), for ``inference="permutation"`` only.
    two_sided : bool or None
        Whether the max-T test used ``|t|``.
    n_permutations : int or None

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from llmfmri.networks import task_map
    >>> rng = np.random.default_rng(0)
    >>> ev = pd.DataFrame({"onset": np.arange(160), "duration": 1,
    ...                    "trial_type": np.repeat(["task", "control"] * 4, 20),
    ...                    "prompt_id": np.arange(160) // 5})
    >>> Y = rng.standard_normal((160, 6)); Y[ev.trial_type == "task", 0] += 1.0
    >>> tm = task_map(Y, "task - control", events=ev)
    >>> tm
    TaskMap('task - control', inference='prompt', n_samples=32, dof=30)
    >>> bool(tm.z.values[0] > 3)
    True
    """

    z: UnitMap
    effect: UnitMap | None
    inference: str
    contrast: str
    dof: float
    n_samples: int
    by: str | None = None
    p_fwer: UnitMap | None = None
    two_sided: bool | None = None
    n_permutations: int | None = None

    def __repr__(self):
        bits = [repr(self.contrast), f"inference={self.inference!r}",
                f"n_samples={self.n_samples}", f"dof={self.dof:g}"]
        if self.p_fwer is not None:
            bits.append(f"n_permutations={self.n_permutations}")
        return "TaskMap(" + ", ".join(bits) + ")"

    @property
    def units(self):
        """The UnitSpace of the map (None for plain arrays)."""
        return self.z.units

    @property
    def n_units(self):
        """Number of units of the map."""
        return self.z.n_units

    @property
    def description(self):
        """What the inference generalises over (``llmfmri.glm.INFERENCES``)."""
        return INFERENCES[self.inference]

    @property
    def generalizes_over_prompts(self):
        """True for prompt-level and permutation inference, False for token-level."""
        return self.inference in ("prompt", "permutation")

    def p_values(self, tail="positive"):
        """Uncorrected p values for one tail, as a UnitMap.

        Parameters
        ----------
        tail : {"positive", "negative", "two-sided"}, default="positive"

        Returns
        -------
        UnitMap
            ``output_type="p_value"``.

        Raises
        ------
        DataError
            For a permutation map, whose p values are family-wise
            (:attr:`p_fwer`) only.
        """
        check_option("tail", tail, TAILS)
        if self.inference == "permutation":
            raise DataError(
                "A permutation TaskMap has family-wise p values only (its p_fwer, max-T); "
                "threshold it with correction='maxt', or use inference='prompt' for "
                "uncorrected p values that generalise over prompts."
            )
        return self.z._replace(tail_p_values(self.z.values, tail), output_type="p_value")

    def to_frame(self):
        """One row per unit: site, layer, index, ``z``, ``effect``, and ``p`` or ``p_fwer``.

        ``p`` is the uncorrected upper-tail p value (prompt and token maps).
        """
        df = self.z.to_frame("z")
        if self.effect is not None:
            df["effect"] = self.effect.values
        if self.p_fwer is not None:
            df["p_fwer"] = self.p_fwer.values
        else:
            df["p"] = tail_p_values(self.z.values, "positive")
        df["inference"] = self.inference
        return df


def _check_glm_kwargs(inference, glm_kwargs):
    if inference == "prompt":
        allowed = _PROMPT_KWARGS
    else:
        allowed = tuple(p for p in FirstLevelGLM._get_param_names()
                        if p not in ("noise_model", "verbose"))
    for key in glm_kwargs:
        if key not in allowed:
            where = ("SecondLevelGLM.fit_prompts" if inference == "prompt"
                     else "FirstLevelGLM")
            raise ValueError(
                f"{key!r} is not an option of {where} (inference={inference!r}); allowed: "
                f"{list(allowed)}." + did_you_mean(key, allowed)
            )


@with_verbose
def task_maps(data, contrasts, *, events=None, runs=None, units=None, inference="prompt",
              by="prompt_id", statistic="mean", condition="trial_type", n_permutations=1000,
              two_sided=False, random_state=None, noise_model="ar1", verbose=0, **glm_kwargs):
    """Maps of several contrasts from one fit (see :func:`task_map` for every parameter).

    Parameters
    ----------
    contrasts : dict label -> contrast, or list of contrast strings
        E.g. ``{"medical": "medical_imaging - control", "pathology": "pathology - control"}``.

    Returns
    -------
    dict of label -> TaskMap
        For ``"permutation"`` one generator (``random_state``) serves every contrast.
    """
    check_option("inference", inference, MAP_INFERENCES)
    _check_glm_kwargs(inference, glm_kwargs)
    if isinstance(contrasts, str):
        contrasts = [contrasts]
    if not hasattr(contrasts, "items"):
        contrasts = {str(c): c for c in contrasts}
    if not contrasts:
        raise DataError("contrasts is empty; give at least one contrast.")
    out = {}
    if inference == "prompt":
        cov = glm_kwargs.get("covariates")
        slm = SecondLevelGLM(chunk_size=glm_kwargs.get("chunk_size"), verbose=verbose)
        slm.fit_prompts(data, events, by=by, condition=condition, statistic=statistic,
                        covariates=cov, runs=runs, units=units)
        n = len(slm.sample_table_)
        for label, con in contrasts.items():
            maps = slm.compute_contrast(con, stat_type="t", output_type="all")
            z = maps["z_score"]
            out[label] = TaskMap(z=z, effect=maps["effect_size"], inference="prompt",
                                 contrast=z.contrast, dof=float(z.dof), n_samples=int(n), by=by)
        return out
    check_option("noise_model", noise_model, ("ols", "ar1"))
    rng = None
    if inference == "permutation":
        n_permutations = check_positive_int("n_permutations", n_permutations)
        rng = check_random_state(random_state)
    model = "ols" if inference == "permutation" else noise_model
    glm = FirstLevelGLM(noise_model=model, verbose=verbose, **glm_kwargs)
    glm.fit(data, events, runs=runs, units=units)
    n = int(sum(dm.shape[0] for dm in glm.design_matrices_))
    for label, con in contrasts.items():
        maps = glm.compute_contrast(con, stat_type="t", output_type="all")
        z, eff = maps["z_score"], maps["effect_size"]
        if inference == "token":
            out[label] = TaskMap(z=z, effect=eff, inference="token", contrast=z.contrast,
                                 dof=float(z.dof), n_samples=n, by=None)
            continue
        res = glm.permutation_test(con, by=by, n_permutations=n_permutations,
                                   two_sided=bool(two_sided), random_state=rng)
        out[label] = TaskMap(
            z=z._replace(z.values, inference="permutation"),
            effect=eff._replace(eff.values, inference="permutation"),
            inference="permutation", contrast=z.contrast, dof=float(z.dof), n_samples=n,
            by=by, p_fwer=res.p_map(), two_sided=bool(two_sided),
            n_permutations=n_permutations)
    return out


@with_verbose
def task_map(data, contrast, *, events=None, runs=None, units=None, inference="prompt",
             by="prompt_id", statistic="mean", condition="trial_type", n_permutations=1000,
             two_sided=False, random_state=None, noise_model="ar1", verbose=0, **glm_kwargs):
    """The map of one contrast, with inference that generalises over prompts by default.

    All frames of one prompt share its context, so a token-level GLM tests the
    prompts that were shown, not the task they stand for (the
    language-as-fixed-effect fallacy, Clark 1973). The default therefore
    summarises each prompt and tests across prompts.

    Parameters
    ----------
    data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
    contrast : str, dict or array
        A t contrast over the conditions, e.g. ``"medical_imaging - control"``.
    events : DataFrame or list of DataFrame, optional
        Per-frame events (a Recording's own by default), with ``trial_type``
        and the ``by`` column.
    runs : list, optional
        A subset of a Recording's runs (or the labels of array runs).
    units : UnitSpace, optional
        Units of array data (a Recording brings its own).
    inference : {"prompt", "permutation", "token"}, default="prompt"
        - ``"prompt"``: one summary (``statistic``) per prompt, then an OLS
          across prompts with one column per condition
          (``SecondLevelGLM().fit_prompts``; the summary-statistics approach
          to random effects, Holmes & Friston 1998). The t has
          ``n_prompts - n_conditions`` degrees of freedom.
        - ``"permutation"``: ``FirstLevelGLM(noise_model="ols")`` and
          ``permutation_test(contrast, by=by)``: condition labels of whole
          prompts are exchanged within runs and the maximum t over units
          gives family-wise p values (Nichols & Holmes 2002).
        - ``"token"``: ``FirstLevelGLM(noise_model=noise_model)`` with fixed
          effects across runs: a statement about the presented prompts only.
    by : str, default="prompt_id"
        The sampling unit: events column summarised (``"prompt"``) or
        exchanged (``"permutation"``); ``"block"`` is the coarser choice.
    statistic : {"mean", "last", "first", "sum"}, default="mean"
        Summary of a prompt's frames (``"prompt"`` only).
    condition : str, default="trial_type"
        Events column of each prompt's condition (``"prompt"`` only).
    n_permutations : int, default=1000
        Permutations of the max-T test (``"permutation"`` only).
    two_sided : bool, default=False
        Max-T on ``|t|`` (``"permutation"`` only); needed to threshold the
        negative tail.
    random_state : int or numpy Generator, optional
        Seed of the permutations.
    noise_model : {"ar1", "ols"}, default="ar1"
        Noise model of the token-level GLM (``"token"`` only).
    verbose : int, default=0
    **glm_kwargs
        Options of ``FirstLevelGLM`` (``drift_model``, ``confounds``,
        ``hrf_model``...) for ``"token"`` and ``"permutation"``;
        ``chunk_size`` and ``covariates`` for ``"prompt"``.

    Returns
    -------
    TaskMap
        ``.z``, ``.effect``, ``.inference``, ``.dof``, ``.p_values(tail)``
        (prompt, token) or ``.p_fwer`` (permutation); threshold it with
        :func:`llmfmri.networks.threshold`.

    Raises
    ------
    ValueError
        For an unknown ``inference``, ``noise_model`` or GLM option.
    DataError
        For data without the events each inference needs.
    llmfmri.exceptions.ContrastError
        For a contrast that names no condition.

    See Also
    --------
    threshold, llmfmri.glm.SecondLevelGLM.fit_prompts, llmfmri.glm.FirstLevelGLM.permutation_test
    """
    maps = task_maps(data, {"_": contrast}, events=events, runs=runs, units=units,
                     inference=inference, by=by, statistic=statistic, condition=condition,
                     n_permutations=n_permutations, two_sided=two_sided,
                     random_state=random_state, noise_model=noise_model, verbose=verbose,
                     **glm_kwargs)
    return maps["_"]


def as_z_map(stat_map, name="stat_map"):
    """(z values, UnitMap of z, TaskMap or None) from a TaskMap, a UnitMap (z or t) or a dict."""
    from ..glm import z_from_t

    if isinstance(stat_map, dict) and "z_score" in stat_map:
        stat_map = stat_map["z_score"]
    if isinstance(stat_map, TaskMap):
        return stat_map.z.values, stat_map.z, stat_map
    if not isinstance(stat_map, UnitMap):
        raise TypeError(
            f"{name} must be a TaskMap (from task_map) or a UnitMap of z or t values, but got "
            f"{type(stat_map).__name__}."
        )
    if stat_map.values.ndim != 1:
        raise DataError(f"{name} must have one value per unit, but has shape "
                        f"{stat_map.values.shape}.")
    if stat_map.output_type == "z_score" and stat_map.stat_type != "F":
        return stat_map.values, stat_map, None
    if stat_map.output_type == "stat" and stat_map.stat_type == "t" and stat_map.dof:
        z = z_from_t(stat_map.values, stat_map.dof) + 0.0
        return z, stat_map._replace(z, output_type="z_score"), None
    raise DataError(
        f"{name} must hold z scores or t statistics with their dof, but got a map of "
        f"output_type={stat_map.output_type!r}, stat_type={stat_map.stat_type!r}; use "
        "compute_contrast(..., output_type='z_score') or task_map(...)."
    )
