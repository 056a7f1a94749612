"""Low-rank truncation (tau, l, rho) of one weight matrix: LASER as a lesion, with its grid search.

LASER (Sharma, Ash & Misra, ICLR 2024) replaces one matrix tau (q, k, v, o,
MLP in, MLP out) of layer l by its rank-``floor(rho * min(m, n))`` SVD
approximation, searches (tau, l, rho) on a validation split (the first 20 %
of the items) and reports the chosen intervention on the rest (the test
split). Chen, Bruna & Bietti (2024) read the gains as removing distributional
("generic") associations stored in late MLPs, which improves in-context
recall. Here a truncation is a weight lesion like any other: a context
manager that restores the matrix bit for bit, recordable, with matched
random controls (the same number of singular components removed, drawn at
random), and the grid reuses one SVD per matrix.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .._utils import (check_fraction, check_option, check_positive_int, check_random_state,
                      logger, progress_bar, with_verbose)
from ..exceptions import DataError
from ._weights import MATRIX_KINDS, _Edit, matrix_name, model_matrices, weight_lesion

__all__ = ["Truncation", "truncate", "truncation_rank", "SVDCache", "truncation_search",
           "TruncationSearch", "LASER_RHOS"]

#: LASER's grid of kept fractions (refactor branch, GPT-J: rate 1..9.95 -> rho 0.9..0.005).
LASER_RHOS = (0.9, 0.8, 0.6, 0.4, 0.2, 0.1, 0.05, 0.01, 0.005)

_COMPONENTS = ("top", "random")


def truncation_rank(shape, rho):
    """``floor(rho * min(m, n))``: the rank a truncation keeps."""
    rho = check_fraction("rho", rho, inclusive=(True, True))
    return int(np.floor(rho * min(int(shape[0]), int(shape[1])) + 1e-9))


class SVDCache:
    """One SVD per matrix, reused across ranks (a grid over rho costs one SVD per matrix).

    Entries are keyed by matrix name and checked against a fingerprint of the
    weights (sum and sum of squares), so a changed matrix is decomposed again.

    Attributes
    ----------
    n_svd : int
        SVDs computed so far.
    """

    def __init__(self):
        self._store = {}
        self.n_svd = 0

    def __len__(self):
        return len(self._store)

    def get(self, name, w):
        """``(U, S, Vh)`` of matrix ``w`` (float64, thin), computed once."""
        import torch

        w64 = w.detach().to(torch.float64)
        key = (float(w64.sum()), float((w64 * w64).sum()), tuple(w.shape))
        hit = self._store.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        u, s, vh = torch.linalg.svd(w64, full_matrices=False)
        self.n_svd += 1
        self._store[name] = (key, (u, s, vh))
        return u, s, vh


class Truncation:
    """A truncation (tau, l, rho): matrix ``tau`` of layer ``l`` replaced by its rank-r SVD.

    Apply it with :func:`truncate` or :func:`weight_lesion` (alone or in a
    list: interventions compose).

    Parameters
    ----------
    matrix : {"q", "k", "v", "o", "mlp_gate", "mlp_in", "mlp_out"}
        tau (LASER's U_in is ``mlp_in``: the up projection in gated MLPs,
        ``mlp_gate`` the gate; U_out is ``mlp_out``).
    layer : int
        l, counted from 0.
    rho : float in [0, 1]
        Fraction of the maximum rank kept: rank ``floor(rho * min(m, n))``
        (0 removes the matrix, as Chen et al.'s rho = 0).
    components : {"top", "random"}, default="top"
        ``"top"``: keep the largest singular components (the truncation);
        ``"random"``: keep as many components drawn at random (a matched
        control: the same number of components removed from the same matrix).
    random_state : optional
        For ``components="random"``.
    svd_cache : SVDCache, optional
        Share SVDs across truncations of the same matrices.
    label : str, optional
    """

    def __init__(self, matrix, layer, rho, *, components="top", random_state=None,
                 svd_cache=None, label=None):
        self.matrix = check_option("matrix", matrix, MATRIX_KINDS)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
            raise ValueError(f"layer must be a whole number >= 0, but got {layer!r}.")
        self.layer = int(layer)
        self.rho = check_fraction("rho", rho, inclusive=(True, True))
        self.components = check_option("components", components, _COMPONENTS)
        check_random_state(random_state)
        self.random_state = random_state
        self.svd_cache = svd_cache if svd_cache is not None else SVDCache()
        self._label = label
        self.n_params = 0
        self.rank = None
        self.shape = None

    @property
    def name(self):
        return matrix_name(self.layer, self.matrix)

    @property
    def label(self):
        tag = "" if self.components == "top" else "-random"
        return self._label or f"truncate({self.matrix},{self.layer},{self.rho:g}){tag}"

    def __repr__(self):
        return (f"Truncation(matrix={self.matrix!r}, layer={self.layer}, rho={self.rho:g}, "
                f"components={self.components!r})")

    def describe(self):
        return {"label": self.label, "kind": "truncation", "matrix": self.matrix,
                "layer": self.layer, "rho": self.rho, "rank": self.rank,
                "components": self.components, "n_params": self.n_params}

    def _edits(self, model):
        import torch

        mats = model_matrices(model)
        if self.name not in mats:
            from .._utils import did_you_mean

            raise DataError(f"The model has no matrix {self.name!r} (it has "
                            f"{len(mats)} block matrices, e.g. {list(mats)[:4]})."
                            + did_you_mean(self.name, list(mats)))
        m = mats[self.name]
        w = m.read()
        self.shape = tuple(w.shape)
        r = truncation_rank(w.shape, self.rho)
        u, s, vh = self.svd_cache.get(self.name, w)
        if self.components == "top":
            keep = torch.arange(r)
        else:
            rng = check_random_state(self.random_state)
            keep = torch.as_tensor(np.sort(rng.choice(s.numel(), size=r, replace=False)),
                                   dtype=torch.long)
        approx = (u[:, keep] * s[keep]) @ vh[keep]
        self.rank = r
        pos = m.positions()
        self.n_params = int(pos.numel())
        return [_Edit(m.param, pos, approx.reshape(-1).to(m.param.dtype).to(m.param.device))]


def truncate(model, matrix, layer, rho, *, components="top", random_state=None, svd_cache=None,
             verbose=None):
    """Replace one matrix by its low-rank approximation while a block runs (restored after).

    ``with truncate(model, "mlp_in", 27, 0.01):`` is LASER's (U_in, 27, 0.01).
    See :class:`Truncation`.

    Returns
    -------
    context manager

    Examples
    --------
    >>> from llmfmri.models import tiny_model
    >>> from llmfmri.lesions import truncate
    >>> model = tiny_model("llama")
    >>> with truncate(model, "mlp_in", 1, 0.25) as les:
    ...     les.lesions[0].rank
    8
    """
    return weight_lesion(model, Truncation(matrix, layer, rho, components=components,
                                           random_state=random_state, svd_cache=svd_cache),
                         verbose=verbose)


# ------------------------------------------------------------------ the search
class TruncationSearch:
    """What :func:`truncation_search` returns.

    Attributes
    ----------
    grid : pandas.DataFrame
        One row per (matrix, layer, rho) on the validation items: ``matrix,
        layer, rho, rank`` and the mean of each measure (``accuracy``,
        ``p_correct``, ``p_generic``, ``logit_diff``...), plus ``delta`` (the
        selection metric minus the intact model's).
    intact_validation : dict
        The intact model's measures on the validation items.
    best : dict
        The selected (matrix, layer, rho) and its validation measures.
    test : pandas.DataFrame
        Intact and best on the test items (:func:`recall_table` rows with a
        ``model`` column), with the paired difference of the metric and its
        bootstrap interval over items in ``attrs["difference"]``.
    items : pandas.DataFrame
        Per-item test scores, ``model`` = ``"intact"`` / ``"truncated"``.
    perplexity : pandas.DataFrame or None
        Perplexity per text set, intact and truncated (held-out texts).
    controls : pandas.DataFrame or None
        Random-component truncations of the best matrix (same rank) on the
        test items, and ``attrs["comparison"]`` (:func:`compare_to_controls`).
    settings : dict
    """

    def __init__(self, grid, intact_validation, best, test, items, perplexity, controls,
                 settings):
        self.grid, self.intact_validation, self.best = grid, intact_validation, best
        self.test, self.items, self.perplexity = test, items, perplexity
        self.controls, self.settings = controls, settings

    def __repr__(self):
        b = self.best
        return (f"TruncationSearch({len(self.grid)} cells, best=({b['matrix']}, {b['layer']}, "
                f"{b['rho']:g}), metric={self.settings['metric']!r})")


_METRICS = ("accuracy", "p_correct", "logit_diff", "beats_generic", "neg_p_generic")


def _measures(scores):
    return {"accuracy": float(scores["correct"].mean()),
            "beats_generic": float(scores["beats_generic"].mean()),
            "beats_subject": float(scores["beats_subject"].mean()),
            "p_correct": float(scores["p_correct"].mean()),
            "p_generic": float(scores["p_generic"].mean()),
            "neg_p_generic": -float(scores["p_generic"].mean()),
            "logit_diff": float(scores["logit_diff"].mean())}


def _paired_difference(a, b, n_boot, rng):
    d = np.asarray(b, float) - np.asarray(a, float)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    boots = d[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"mean_difference": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "n_items": int(d.size), "ci_method": "bootstrap over items (paired)"}


@with_verbose
def truncation_search(model, items=None, *, matrices=("mlp_in", "mlp_out"), layers=None,
                      rhos=LASER_RHOS, validation=0.2, metric="accuracy", texts=None,
                      n_controls=0, score=None, n_items=200, batch_size=16, max_length=None,
                      n_boot=2000, random_state=0, progress=False, verbose=None):
    """LASER's search: pick (tau, l, rho) on validation items, report it on the test items.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    items : pandas.DataFrame, optional
        Items in a fixed order; the first ``validation`` fraction is the
        validation split, the rest the test split (LASER: first 20 %).
        Default :func:`recall_items` ``(n_items, seed=0)`` for the model's
        tokenizer.
    matrices : list of str, default=("mlp_in", "mlp_out")
    layers : list of int, optional
        Default every layer.
    rhos : list of float, default=LASER_RHOS
    validation : float, default=0.2
    metric : {"accuracy", "p_correct", "logit_diff", "beats_generic", "neg_p_generic"}
        Mean over validation items to maximise (ties: the larger rho, then
        grid order). ``"neg_p_generic"``: minus the mass on generic tokens.
    texts : text sets, optional
        Held-out texts whose perplexity is reported intact and truncated.
    n_controls : int, default=0
        Random-component truncations of the chosen matrix with the same rank.
    score : callable, optional
        ``score(model, items) -> per-item DataFrame`` with the columns of
        :func:`score_recall`; default :func:`score_recall`.
    n_items, batch_size, max_length, n_boot, random_state, progress, verbose

    Returns
    -------
    TruncationSearch
    """
    from ._controls import compare_to_controls
    from ._recall import recall_items, recall_table, score_recall

    check_option("metric", metric, _METRICS)
    validation = check_fraction("validation", validation, inclusive=(False, False))
    n_controls = check_positive_int("n_controls", n_controls, minimum=0)
    rng = check_random_state(random_state)
    score = score_recall if score is None else score
    if items is None:
        items = recall_items(n_items, seed=0, tokenizer=getattr(model, "tokenizer", None))
    n_val = int(validation * len(items))
    if n_val < 1 or n_val >= len(items):
        raise DataError(f"validation={validation} of {len(items)} items leaves an empty split; "
                        "give more items.")
    val, test = items.iloc[:n_val].reset_index(drop=True), items.iloc[n_val:].reset_index(
        drop=True)
    matrices = [matrices] if isinstance(matrices, str) else list(matrices)
    for m in matrices:
        check_option("matrices", m, MATRIX_KINDS)
    mats = model_matrices(model, matrices, layers)
    rhos = [check_fraction("rhos", r, inclusive=(True, True)) for r in rhos]
    if not rhos:
        raise ValueError("rhos is empty: give at least one rho, e.g. (0.1, 0.01).")

    def run(items_):
        return score(model, items_, batch_size=batch_size)

    t0 = time.perf_counter()
    intact_val = _measures(run(val))
    cache = SVDCache()
    rows = []
    bar = progress_bar(total=len(mats) * len(rhos), desc="truncation grid", unit="cell",
                       verbose=progress)
    try:
        for name, mat in mats.items():
            for rho in rhos:
                t = Truncation(mat.kind, mat.layer, rho, svd_cache=cache)
                with weight_lesion(model, t):
                    meas = _measures(run(val))
                rows.append({"matrix": mat.kind, "layer": mat.layer, "rho": rho,
                             "rank": t.rank, "max_rank": min(t.shape), **meas,
                             "delta": meas[metric] - intact_val[metric]})
                bar.update(1)
    finally:
        bar.close()
    grid = pd.DataFrame(rows)
    order = grid.sort_values([metric, "rho"], ascending=[False, False], kind="stable")
    best = order.iloc[0].to_dict()
    best["improves"] = bool(best[metric] > intact_val[metric])
    logger.info("truncation_search: %d cells, %d SVDs, best (%s, %d, %g): %s %.4g vs intact "
                "%.4g", len(grid), cache.n_svd, best["matrix"], best["layer"], best["rho"],
                metric, best[metric], intact_val[metric])
    chosen = Truncation(best["matrix"], int(best["layer"]), float(best["rho"]), svd_cache=cache)
    intact_test = run(test).assign(model="intact")
    with weight_lesion(model, chosen):
        trunc_test = run(test).assign(model="truncated")
        ppl_trunc = _perplexity(model, texts, batch_size, max_length) if texts is not None \
            else None
    ppl = None
    if texts is not None:
        ppl = pd.concat([_perplexity(model, texts, batch_size, max_length).assign(
            model="intact"), ppl_trunc.assign(model="truncated")], ignore_index=True)
    per_item = pd.concat([intact_test, trunc_test], ignore_index=True)
    test_table = pd.concat([recall_table(intact_test).assign(model="intact"),
                            recall_table(trunc_test).assign(model="truncated")],
                           ignore_index=True)
    col = {"accuracy": "correct", "neg_p_generic": "p_generic"}.get(metric, metric)
    sign = -1.0 if metric == "neg_p_generic" else 1.0
    test_table.attrs["difference"] = _paired_difference(
        sign * intact_test[col].to_numpy(), sign * trunc_test[col].to_numpy(), n_boot, rng)
    controls = None
    if n_controls:
        crow = []
        for k in range(n_controls):
            c = Truncation(best["matrix"], int(best["layer"]), float(best["rho"]),
                           components="random", random_state=rng, svd_cache=cache)
            with weight_lesion(model, c):
                crow.append({"control": k, **_measures(run(test))})
        controls = pd.DataFrame(crow)
        base = _measures(intact_test)[metric]
        controls.attrs["comparison"] = compare_to_controls(
            _measures(trunc_test)[metric] - base, controls[metric].to_numpy() - base,
            alternative="greater")
    settings = {"matrices": matrices, "layers": sorted({m.layer for m in mats.values()}),
                "rhos": rhos, "validation": validation, "n_validation": n_val,
                "n_test": len(test), "metric": metric, "n_svd": cache.n_svd,
                "n_controls": n_controls, "seconds": time.perf_counter() - t0}
    return TruncationSearch(grid, intact_val, best, test_table, per_item, ppl, controls,
                            settings)


def _perplexity(model, texts, batch_size, max_length):
    from ._behaviour import perplexity_table
    from ._scoring import score_texts

    scores = score_texts(model, texts, batch_size=batch_size, max_length=max_length)
    return perplexity_table(scores, by="text_set")
