"""A weight lesion against its controls, in one call: behaviour intact, lesioned and controlled.

The behaviour, tables and comparisons are issue 13's (:func:`score_behaviour`,
:func:`behaviour_table`, :func:`compare_conditions`); only the lesion differs:
weights instead of units. :func:`core_region_study` is Zhang et al.'s
experiment: importance on some texts, the top fraction of every matrix
zeroed, against the bottom fraction and random regions of the same per-matrix
size, perplexity per text set on held-out texts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import check_positive_int, with_verbose
from ..exceptions import DataError
from ._regions import WeightRegion, random_regions
from ._weights import WeightLesion, _is_lesion, weight_lesion

__all__ = ["WeightLesionStudy", "weight_lesion_study", "core_region_study"]


class WeightLesionStudy:
    """What :func:`weight_lesion_study` returns (and writes with :meth:`save`).

    Attributes
    ----------
    lesion : WeightLesion or Truncation
    controls : dict of str to list of lesions
    items : pandas.DataFrame
        Per-item behaviour of every condition (``condition``, ``draw``).
    behaviour : pandas.DataFrame
        :func:`behaviour_table` of :attr:`items`.
    summary : pandas.DataFrame
        :func:`compare_conditions`: the lesion against each control kind.
    settings : dict
    """

    def __init__(self, lesion, controls, items, behaviour, summary, settings):
        self.lesion, self.controls = lesion, controls
        self.items, self.behaviour, self.summary = items, behaviour, summary
        self.settings = settings

    def __repr__(self):
        n = {k: len(v) for k, v in self.controls.items()}
        return f"WeightLesionStudy({self.lesion!r}, controls={n})"

    def perplexity(self):
        """Perplexity per text set: intact, the lesion, and each control draw (wide)."""
        b = self.behaviour[self.behaviour["measure"] == "perplexity"].copy()
        b["column"] = np.where(b["condition"].isin(["intact", "lesion"]), b["condition"],
                               b["condition"] + "-" + b["draw"].astype(str))
        return b.pivot(index="set", columns="column", values="value")

    def controls_table(self):
        """One row per lesion and control: kind, draw, label, weights, per-matrix match."""
        rows = [_describe("lesion", 0, self.lesion, self.lesion)]
        for kind, lesions in self.controls.items():
            rows += [_describe(kind, k, les, self.lesion) for k, les in enumerate(lesions)]
        return pd.DataFrame(rows)

    def save(self, out, *, overwrite=False, prefix="weight-lesion"):
        """Write ``<prefix>-summary.tsv``, ``-behaviour.tsv``, ``-items.tsv``,
        ``-controls.tsv``, the lesioned region (when it is one) and
        ``<prefix>.json`` (all or nothing)."""
        from ..io import OutputSet, table_path

        out = Path(out)
        outputs = OutputSet(out, overwrite=overwrite)
        for name, table in ((f"{prefix}-summary", self.summary),
                            (f"{prefix}-behaviour", self.behaviour),
                            (f"{prefix}-items", self.items),
                            (f"{prefix}-controls", self.controls_table())):
            outputs.add_tsv(table_path(out, name).name, table)
        region = getattr(self.lesion, "region", None)
        if isinstance(region, WeightRegion):
            region.add_to(outputs, f"{prefix}-region")
            outputs.add_tsv(table_path(out, f"{prefix}-region-counts").name, region.counts())
        outputs.add_json(f"{prefix}.json", self.summary_dict())
        return outputs.write()

    def summary_dict(self):
        return {"settings": self.settings, "lesion": self.lesion.describe(),
                "controls": {k: len(v) for k, v in self.controls.items()},
                "comparisons": json.loads(self.summary.to_json(orient="records"))}


def _describe(kind, draw, les, ref):
    d = les.describe()
    row = {"kind": kind, "draw": draw, "label": d.get("label"), "n_params": d.get("n_params")}
    r, r0 = getattr(les, "region", None), getattr(ref, "region", None)
    if isinstance(r, WeightRegion) and isinstance(r0, WeightRegion):
        row["overlap"] = (r & r0).n_params
        row["same_per_matrix_counts"] = bool(
            np.array_equal(r.counts()["n_params"].to_numpy(), r0.counts()["n_params"].to_numpy())
            and list(r.masks) == list(r0.masks))
    return row


def _as_lesion(obj, strategy, factor, sigma, random_state):
    if _is_lesion(obj):
        return obj
    if isinstance(obj, WeightRegion):
        return WeightLesion(obj, strategy, factor=factor, sigma=sigma, random_state=random_state)
    raise TypeError(f"A lesion must be a WeightRegion, WeightLesion or Truncation, but got "
                    f"{type(obj).__name__}.")


@with_verbose
def weight_lesion_study(model, lesion, *, controls=None, n_random=5, texts=None, tasks=(),
                        strategy="zero", factor=None, sigma=None, random_state=0, batch_size=8,
                        max_length=None, out=None, overwrite=False, verbose=None):
    """Behaviour intact, under a weight lesion and under its controls, compared.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    lesion : WeightRegion, WeightLesion or Truncation
        A region is lesioned with ``strategy`` (``factor``, ``sigma``).
    controls : mapping of str to list, optional
        Control lesions (regions or lesions) by kind, e.g.
        ``{"bottom": [bottom_region]}``. ``n_random`` random regions matched
        per matrix are added as ``"random"`` when ``lesion`` is a region.
    n_random : int, default=5
        Random regions (same per-matrix counts, outside the region); 0 for none.
    texts : text sets, optional
        Perplexity per set (default: the domains paradigm).
    tasks : list of paradigms, default=()
        Gold-answer paradigms for accuracy (generation: slow on CPU).
    strategy, factor, sigma
        How regions are lesioned (:class:`WeightLesion`).
    random_state : int, default=0
    batch_size, max_length
    out : path, optional
        Write the results there (:meth:`WeightLesionStudy.save`).
    overwrite : bool, default=False

    Returns
    -------
    WeightLesionStudy
    """
    from ..io import OutputSet
    from ..paradigm import Paradigm, load_paradigm
    from ._scoring import load_texts
    from ._study import CI_METHODS, behaviour_table, compare_conditions, score_conditions

    n_random = check_positive_int("n_random", n_random, minimum=0)
    main = _as_lesion(lesion, strategy, factor, sigma, random_state)
    if out is not None:
        early = OutputSet(out, overwrite=overwrite)
        early.add_json("weight-lesion.json", {})
        early.check()
    ctrl = {}
    for kind, items in dict(controls or {}).items():
        items = [items] if not isinstance(items, (list, tuple)) else list(items)
        ctrl[kind] = [_as_lesion(c, strategy, factor, sigma, random_state) for c in items]
    region = getattr(main, "region", None)
    if n_random and isinstance(region, WeightRegion):
        ctrl.setdefault("random", [])
        ctrl["random"] += [_as_lesion(r, main.strategy, main.factor,
                                      main.sigma if main.strategy == "noise" else None,
                                      random_state)
                           for r in random_regions(region, n_random, random_state=random_state)]
    if not ctrl:
        raise DataError("weight_lesion_study needs controls: n_random > 0 with a region, or "
                        "controls={kind: [...]}.")
    text_sets = load_texts("domains" if texts is None else texts)
    task_list = [t if isinstance(t, Paradigm) else load_paradigm(t) for t in tasks or ()]
    conditions = [("intact", 0, None), ("lesion", 0, main)]
    conditions += [(kind, k, les) for kind, lst in ctrl.items() for k, les in enumerate(lst)]
    started = time.time()
    items = score_conditions(model, conditions, lambda les: weight_lesion(model, les),
                             texts=text_sets, tasks=task_list, batch_size=batch_size,
                             max_length=max_length, who="weight_lesion_study")
    behaviour = behaviour_table(items, random_state=random_state)
    summary = compare_conditions(behaviour, controls=tuple(ctrl))
    settings = {"lesion": main.describe(), "n_random": len(ctrl.get("random", ())),
                "controls": {k: [c.label for c in v] for k, v in ctrl.items()},
                "text_sets": {k: len(v) for k, v in text_sets.items()},
                "tasks": [t.name for t in task_list], "random_state": random_state,
                "model": getattr(model, "llmfmri_info", {}).get("model_id"),
                "seconds": round(time.time() - started, 1), "ci": dict(CI_METHODS)}
    study = WeightLesionStudy(main, ctrl, items, behaviour, summary, settings)
    if out is not None:
        study.save(out, overwrite=overwrite)
    return study


@with_verbose
def core_region_study(model, importance, texts, *, fraction=0.01, strategy="zero",
                      factor=None, sigma=None, n_random=5, bottom=True, sets=None,
                      random_state=0, batch_size=8, max_length=None, out=None, overwrite=False,
                      verbose=None):
    """Zhang et al.'s core-region experiment: the top fraction of every matrix against controls.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    importance : ParameterImportance
        From :func:`parameter_importance` on *other* texts than ``texts``.
    texts : text sets
        Held-out texts: perplexity per set.
    fraction : float, default=0.01
    strategy : {"zero", "noise", "scale"}, default="zero"
    factor, sigma : float, optional
        For ``"scale"`` and ``"noise"`` (:class:`WeightLesion`).
    n_random : int, default=5
        Random regions with the same per-matrix counts (outside the core).
    bottom : bool, default=True
        Add the bottom ``fraction`` of every matrix as a control.
    sets : list of str, optional
        Importance sets summed for the core (default all).
    random_state, batch_size, max_length, out, overwrite, verbose

    Returns
    -------
    WeightLesionStudy
    """
    core = importance.region("top", fraction, sets=sets, label=f"core{100 * fraction:g}%")
    controls = {}
    if bottom:
        controls["bottom"] = [importance.region("bottom", fraction, sets=sets,
                                                label=f"bottom{100 * fraction:g}%")]
    return weight_lesion_study(model, core, controls=controls, n_random=n_random, texts=texts,
                               strategy=strategy, factor=factor, sigma=sigma,
                               random_state=random_state,
                               batch_size=batch_size, max_length=max_length, out=out,
                               overwrite=overwrite)
