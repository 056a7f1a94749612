"""The localizer lesion study in one call: localize, lesion, measure behaviour against controls."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import check_option, check_positive_int, logger, with_verbose
from ..exceptions import DataError
from ..glm import UnitMap, summarize_prompts
from ..networks import task_map, top_k
from ._behaviour import accuracy_table, perplexity_table
from ._controls import compare_to_controls, least_selective, random_controls, unit_magnitude

__all__ = ["localizer_map", "LOCALIZER_STATISTICS", "default_text_sets", "DEFAULT_TASKS",
           "score_behaviour", "behaviour_table", "compare_conditions", "LesionStudy",
           "localizer_study"]

#: How :func:`localizer_map` scores each unit's selectivity.
LOCALIZER_STATISTICS = {
    "welch_abs": "Welch t across prompts on the absolute activation at the last prompt token "
                 "(AlKhamissi et al. 2025, the seed)",
    "prompt": "prompt-level t (SecondLevelGLM.fit_prompts on per-prompt means, pooled "
              "variance): llmfmri's task_map",
}

#: Paradigms with gold answers scored by default.
DEFAULT_TASKS = ("multiple_demand", "theory_of_mind", "template")


def _split_contrast(contrast):
    m = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*-\s*([A-Za-z][A-Za-z0-9_]*)\s*", contrast)
    if m is None:
        raise ValueError(f"contrast must be 'a - b' (two conditions), but got {contrast!r}.")
    return m.group(1), m.group(2)


def localizer_map(recording, contrast="sentences - nonwords", *, statistic="welch_abs",
                  runs=None):
    """Each unit's selectivity for a localizer contrast.

    Parameters
    ----------
    recording : Recording
        A localizer (e.g. ``paradigms/language_localizer.yaml``: one
        last-token frame per prompt).
    contrast : str, default="sentences - nonwords"
        ``"a - b"``.
    statistic : {"welch_abs", "prompt"}, default="welch_abs"
        ``"welch_abs"``: the seed's statistic, Welch's t of ``|activation|``
        at each prompt's last frame, condition a vs b, prompts as samples
        (AlKhamissi et al. 2025: ``ttest_ind(|pos|, |neg|,
        equal_var=False)``). ``"prompt"``: llmfmri's prompt-level t of the
        signed per-prompt means (:func:`llmfmri.networks.task_map`).
    runs : list of int, optional

    Returns
    -------
    UnitMap or TaskMap
        ``"welch_abs"``: a UnitMap of t (``output_type="stat"``,
        ``inference="prompt"``); units where both conditions are constant get
        t = 0. ``"prompt"``: a TaskMap (its z is ranked by ``top_k``).
    """
    check_option("statistic", statistic, tuple(LOCALIZER_STATISTICS))
    a, b = _split_contrast(contrast)
    if statistic == "prompt":
        return task_map(recording, f"{a} - {b}", runs=runs, inference="prompt")
    table, values = summarize_prompts(recording, statistic="last", runs=runs)
    cond = table["trial_type"].astype(str).to_numpy()
    for c in (a, b):
        if (cond == c).sum() < 2:
            raise DataError(f"Condition {c!r} has {(cond == c).sum()} prompts in the "
                            f"localizer recording (conditions: {sorted(set(cond))}); Welch's t "
                            "needs at least 2 in each.")
    x, y = np.abs(values[cond == a]), np.abs(values[cond == b])
    vx, vy = x.var(axis=0, ddof=1) / x.shape[0], y.var(axis=0, ddof=1) / y.shape[0]
    se = np.sqrt(vx + vy)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, (x.mean(axis=0) - y.mean(axis=0)) / se, 0.0)
    return UnitMap(t, recording.units, stat_type="t", output_type="stat",
                   contrast=f"{a} - {b}", inference="prompt")


def default_text_sets():
    """The text sets of the localizer study (from the repository's paradigms).

    ``plain_english``: the domains paradigm's science, fiction and legal
    passages (30); ``code``: its Python passages (10); ``nonword_lists``: the
    language localizer's non-word lists (132); ``random_strings``: the
    functional-networks paradigm's random strings (24).

    Returns
    -------
    dict of str to list of str
    """
    from ..paradigm import load_paradigm

    domains = load_paradigm("domains").conditions
    loc = load_paradigm("language_localizer").conditions
    fn = load_paradigm("functional_networks").conditions
    return {
        "plain_english": [p for c in ("science", "fiction", "legal") for p in domains[c].prompts],
        "code": list(domains["code"].prompts),
        "nonword_lists": list(loc["nonwords"].prompts),
        "random_strings": list(fn["random_strings"].prompts),
    }


def score_behaviour(model, *, texts=None, tasks=(), gold=True, batch_size=8, max_length=None):
    """Per-item behaviour of a model (run it inside :func:`lesion` for the lesioned model).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    texts : mapping, optional
        Text sets for perplexity (see :func:`load_texts`).
    tasks : list of Paradigm or str
        Paradigms with gold answers, scored by greedy generation (``"accuracy"``).
    gold : bool, default=True
        Also score each task's gold answers by their log-probability
        (``"answer_perplexity"``) and, for tasks with at most 4 distinct
        answers, by forced choice (``"choice_accuracy"``; :func:`score_gold`).
    batch_size : int
    max_length : int, optional
        Sliding-window length for texts (default: the model's context).

    Returns
    -------
    pandas.DataFrame
        One row per item and measure: ``measure`` (``"perplexity"``,
        ``"accuracy"``, ``"answer_perplexity"``, ``"choice_accuracy"``),
        ``set`` (text set or paradigm), ``subset`` (the paradigm condition,
        or the text set), ``item``, ``n_tokens``, ``nll``, ``correct``,
        ``response``.
    """
    from ._scoring import score_answers, score_gold, score_texts

    parts = []
    if texts:
        t = score_texts(model, texts, batch_size=batch_size, max_length=max_length)
        parts.append(pd.DataFrame({
            "measure": "perplexity", "set": t["text_set"], "subset": t["text_set"],
            "item": t["item"].astype(str), "n_tokens": t["n_tokens"], "nll": t["nll"],
            "correct": np.nan, "response": ""}))
    for task in tasks or ():
        a = score_answers(model, task, batch_size=max(batch_size, 16))
        a = a[a["answer"].notna()]
        item = a["run"].astype(str) + ":" + a["prompt_id"]
        parts.append(pd.DataFrame({
            "measure": "accuracy", "set": a["paradigm"], "subset": a["trial_type"],
            "item": item, "n_tokens": a["n_tokens"], "nll": a["nll"],
            "correct": a["correct"], "response": a["response"]}))
        if not gold:
            continue
        g = score_gold(model, task, batch_size=max(batch_size, 16))
        item = g["run"].astype(str) + ":" + g["prompt_id"]
        parts.append(pd.DataFrame({
            "measure": "answer_perplexity", "set": g["paradigm"], "subset": g["trial_type"],
            "item": item, "n_tokens": g["n_tokens"], "nll": g["nll"], "correct": np.nan,
            "response": g["answer"]}))
        if g["correct"].notna().any():
            parts.append(pd.DataFrame({
                "measure": "choice_accuracy", "set": g["paradigm"], "subset": g["trial_type"],
                "item": item, "n_tokens": g["n_tokens"], "nll": g["nll"],
                "correct": g["correct"], "response": g["choice"]}))
    if not parts:
        raise ValueError("score_behaviour needs texts= or tasks=.")
    return pd.concat(parts, ignore_index=True)


def behaviour_table(items, *, by=("condition", "draw"), n_boot=2000, random_state=0):
    """Perplexity and accuracy per set (and paradigm condition), with intervals over items.

    Parameters
    ----------
    items : DataFrame
        From :func:`score_behaviour` (plus the ``by`` columns).
    by : tuple of str
        Columns that identify a lesion condition.

    Returns
    -------
    pandas.DataFrame
        One row per ``by`` x measure x set x subset (``subset="all"`` for the
        whole set; measures ending in ``perplexity`` are perplexities, the
        others accuracies): ``value``, ``ci_low``,
        ``ci_high``, ``ci_method`` (bootstrap over items for perplexity,
        Wilson for accuracy), ``n_items``, ``n_tokens``.
    """
    by = list(by)
    rows = []
    for key, g in items.groupby(by + ["measure", "set"], sort=False):
        *cond, measure, set_ = key
        subsets = [("all", g)]
        if g["subset"].nunique() > 1:
            subsets += list(g.groupby("subset", sort=False))
        for subset, s in subsets:
            if measure.endswith("perplexity"):
                t = perplexity_table(s, by=None, n_boot=n_boot, random_state=random_state)
                value, n_tok = t["perplexity"].iloc[0], t["n_tokens"].iloc[0]
            else:
                t = accuracy_table(s, by=None)
                value, n_tok = t["accuracy"].iloc[0], int(s["n_tokens"].sum())
            row = dict(zip(by, cond))
            row.update(measure=measure, set=set_, subset=subset, value=float(value),
                       ci_low=float(t["ci_low"].iloc[0]), ci_high=float(t["ci_high"].iloc[0]),
                       ci_method=t["ci_method"].iloc[0], n_items=int(t["n_items"].iloc[0]),
                       n_tokens=int(n_tok))
            rows.append(row)
    return pd.DataFrame(rows)


def compare_conditions(table, *, lesion="lesion", intact="intact",
                       controls=("random", "magnitude", "bottom")):
    """Each measure: the lesion against intact and against each control's distribution.

    Parameters
    ----------
    table : DataFrame
        :func:`behaviour_table` output with ``condition`` and ``draw``.

    Returns
    -------
    pandas.DataFrame
        One row per measure x set x subset x control kind: ``intact``,
        ``lesion``, ``effect`` (lesion - intact), ``relative_effect``
        (effect / intact), ``control_mean``, ``control_sd``, ``control_min``,
        ``control_max``, ``n_controls``, ``z``, ``p_empirical`` (``(1 +
        #controls with an effect at least as large a deficit) / (1 + n)``:
        a higher perplexity, a lower accuracy).
    """
    rows = []
    keys = ["measure", "set", "subset"]
    for key, g in table.groupby(keys, sort=False):
        base = g[g["condition"] == intact]["value"]
        les = g[g["condition"] == lesion]["value"]
        if base.empty or les.empty:
            continue
        base, les = float(base.iloc[0]), float(les.iloc[0])
        alternative = "greater" if key[0].endswith("perplexity") else "less"
        for kind in controls:
            c = g[g["condition"] == kind]["value"].to_numpy(dtype=float)
            if c.size == 0:
                continue
            cmp = compare_to_controls(les - base, c - base, alternative=alternative)
            row = dict(zip(keys, key))
            row.update(control=kind, intact=base, lesion=les, effect=les - base,
                       relative_effect=(les - base) / base if base else np.nan)
            row.update({k: v for k, v in cmp.items() if k != "effect"})
            rows.append(row)
    return pd.DataFrame(rows)


class LesionStudy:
    """What :func:`localizer_study` returns (and writes with :meth:`save`).

    Attributes
    ----------
    stat_map : UnitMap or TaskMap
        The localizer statistic.
    network : Network
        The lesioned units (top ``fraction``).
    controls : dict of str to list of Network
        ``"random"`` (matched per layer and site, outside the network),
        ``"magnitude"`` (also matched on activation magnitude) and
        ``"bottom"`` (least selective), as asked.
    items : pandas.DataFrame
        Per-item behaviour of every condition (``condition``, ``draw``).
    behaviour : pandas.DataFrame
        :func:`behaviour_table` of :attr:`items`.
    summary : pandas.DataFrame
        :func:`compare_conditions`: the lesion against each control.
    settings : dict
    magnitude : UnitMap or None
        Mean |activation| of every unit in the localizer recording.
    """

    def __init__(self, stat_map, network, controls, items, behaviour, summary, settings,
                 magnitude=None):
        self.stat_map, self.network, self.controls = stat_map, network, controls
        self.items, self.behaviour, self.summary = items, behaviour, summary
        self.settings, self.magnitude = settings, magnitude

    def __repr__(self):
        n = {k: len(v) for k, v in self.controls.items()}
        return f"LesionStudy({self.network!r}, controls={n})"

    def controls_table(self):
        """One row per lesioned set: kind, draw, size, overlap with the lesion, matching.

        With the magnitudes known: ``mean_magnitude`` and ``median_magnitude``
        (mean |activation| of the set's units) and ``median_layer_percentile``
        (of each unit's magnitude among the units of its site).
        """
        prof = self.network.layer_profile()["n_units"].to_numpy()
        pct = None
        if self.magnitude is not None:
            mag = np.asarray(self.magnitude.values)
            pct = np.zeros_like(mag)
            sites = self.network.units.table["site"].to_numpy()
            for site in dict.fromkeys(sites):
                idx = np.flatnonzero(sites == site)
                pct[idx] = np.argsort(np.argsort(mag[idx])) / max(idx.size - 1, 1)
        rows = []
        sets = [("lesion", [self.network])] + list(self.controls.items())
        for kind, nets in sets:
            for k, net in enumerate(nets):
                row = {"kind": kind, "draw": k, "label": net.label, "n_units": net.n_units,
                       "overlap": int((net.mask & self.network.mask).sum()),
                       "same_per_site_counts": bool(np.array_equal(
                           net.layer_profile()["n_units"].to_numpy(), prof))}
                if pct is not None:
                    cols = net.columns
                    row.update(mean_magnitude=float(mag[cols].mean()),
                               median_magnitude=float(np.median(mag[cols])),
                               median_layer_percentile=float(np.median(pct[cols])))
                rows.append(row)
        return pd.DataFrame(rows)

    def save(self, out, *, overwrite=False):
        """Write the tables, the network and ``summary.json`` (all or nothing).

        Files (names from :func:`llmfmri.io.table_path` and
        :func:`llmfmri.io.network_stem`): ``lesion-summary.tsv``,
        ``lesion-behaviour.tsv``, ``lesion-items.tsv``, ``lesion-controls.tsv``,
        ``lesion-layers.tsv`` (units per layer of the network), the network's
        ``_mask.nii.gz`` and ``_units.tsv``, and ``summary.json``.

        Returns
        -------
        list of pathlib.Path
        """
        from ..io import OutputSet, table_path
        from ..networks import save_networks

        out = Path(out)
        outputs = OutputSet(out, overwrite=overwrite)
        for name, table in (("lesion-summary", self.summary),
                            ("lesion-behaviour", self.behaviour),
                            ("lesion-items", self.items),
                            ("lesion-controls", self.controls_table()),
                            ("lesion-layers", self.network.layer_profile())):
            outputs.add_tsv(table_path(out, name).name, table)
        save_networks([self.network], out, task=self.settings.get("localizer_task"),
                      outputs=outputs, table=False)
        outputs.add_json("summary.json", self.summary_dict())
        return outputs.write()

    def summary_dict(self):
        """Settings, the network and the main comparisons, as a JSON-ready dict."""
        main = self.summary.copy()
        return {
            "settings": self.settings,
            "network": self.network.summary(),
            "controls": {k: len(v) for k, v in self.controls.items()},
            "comparisons": json.loads(main.to_json(orient="records")),
        }


def _record_localizer(model, localizer, recording, sites, batch_size):
    """The localizer recording: given, recorded into ``recording`` (resumed or reused when it
    holds this very recording; refused when it holds another), or into a temporary folder."""
    from ..recording import record
    from ._reference import check_reference_model
    from ._units import model_identity

    if hasattr(recording, "runs") and hasattr(recording, "units"):
        check_reference_model(recording, *model_identity(model))
        return recording, None
    tmp = None
    if recording is None:
        tmp = tempfile.TemporaryDirectory(prefix="llmfmri-localizer-")
        recording = Path(tmp.name) / "localizer"
    rec = record(model, localizer, sites=sites, out=recording, batch_size=batch_size,
                 progress=False)
    return rec, tmp


#: how :func:`behaviour_table` makes its intervals (recorded in every study's settings)
CI_METHODS = {"perplexity": "percentile bootstrap over items (2000 resamples)",
              "accuracy": "Wilson score interval over items"}


def score_conditions(model, conditions, enter, *, texts, tasks, batch_size, max_length,
                     who="study"):
    """Per-item behaviour of the model under each condition of a lesion study.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    conditions : list of (kind, draw, lesion or None)
        ``("intact", 0, None)``, ``("lesion", 0, ...)``, then the controls.
    enter : callable
        ``enter(lesion)`` returns the context manager that applies it (a unit
        lesion, a weight lesion...); ``None`` runs the intact model.
    texts, tasks, batch_size, max_length
        As :func:`score_behaviour`.
    who : str
        Names the study in the log.

    Returns
    -------
    pandas.DataFrame
        :func:`score_behaviour`'s rows with ``condition`` and ``draw`` first.
    """
    parts = []
    for kind, k, les in conditions:
        t0 = time.time()
        with contextlib.nullcontext() if les is None else enter(les):
            items = score_behaviour(model, texts=texts, tasks=tasks, batch_size=batch_size,
                                    max_length=max_length)
        items.insert(0, "draw", k)
        items.insert(0, "condition", kind)
        parts.append(items)
        logger.info("%s: %s %d scored in %.1f s", who, kind, k, time.time() - t0)
    return pd.concat(parts, ignore_index=True)


@with_verbose
def localizer_study(model, *, localizer="language_localizer", contrast="sentences - nonwords",
                    statistic="welch_abs", fraction=0.01, per_layer=False, sites="resid_post",
                    strategy="zero", factor=None, n_random=5, n_magnitude=0, magnitude_bins=10,
                    bottom=True, texts=None,
                    tasks=DEFAULT_TASKS, localizer_recording=None, out=None, overwrite=False,
                    random_state=0, batch_size=8, max_length=None, verbose=None):
    """Localize units, lesion them, and measure behaviour against matched controls.

    The study of AlKhamissi et al. (2025) in one call: record the localizer,
    score each unit's selectivity (:func:`localizer_map`), take the top
    ``fraction`` of units (:func:`llmfmri.networks.top_k`), lesion them
    (``strategy``), and measure perplexity on text sets and accuracy on
    gold-answer paradigms -- intact, lesioned, and under each control:
    ``n_random`` random networks with the same number of units in every layer
    and site (outside the network), ``n_magnitude`` more also matched on
    activation magnitude (quantile bins per site, from the localizer
    recording), and the least selective units (the bottom ``fraction``).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    localizer : Paradigm or str, default="language_localizer"
    contrast : str, default="sentences - nonwords"
    statistic : {"welch_abs", "prompt"}, default="welch_abs"
        See :func:`localizer_map`.
    fraction : float, default=0.01
        Share of units lesioned (of all recorded units; of each site with
        ``per_layer``).
    per_layer : bool, default=False
    sites : str or list, default="resid_post"
        Sites the localizer records (and the lesion may touch).
    strategy : str, default="zero"
        The lesion strategy (``"mean"``, ``"noise"`` and ``"resample"`` use
        the localizer recording as their reference).
    factor : float, optional
        For ``strategy="scale"``.
    n_random : int, default=5
    n_magnitude : int, default=0
    magnitude_bins : int, default=10
        Quantile bins of mean |activation| per site for the magnitude-matched
        controls (finer bins match the network's large units more closely).
    bottom : bool, default=True
    texts : mapping, optional
        Text sets for perplexity (default :func:`default_text_sets`).
    tasks : list of Paradigm or str, default=DEFAULT_TASKS
        Gold-answer paradigms for accuracy.
    localizer_recording : Recording or path, optional
        An existing localizer recording of this model, or where to record it
        (default: a temporary folder).
    out : path, optional
        Write the results there (:meth:`LesionStudy.save`).
    overwrite : bool, default=False
    random_state : int, default=0
        Seeds the control draws (and noise or resampling).
    batch_size : int, default=8
    max_length : int, optional
        Sliding-window length for perplexity.
    verbose : optional

    Returns
    -------
    LesionStudy
    """
    from ..io import OutputSet
    from ..paradigm import Paradigm, load_paradigm
    from ._lesion import STRATEGIES, Lesion, lesion

    check_option("strategy", strategy, tuple(STRATEGIES))
    if (strategy == "scale") != (factor is not None):
        raise ValueError("factor= goes with strategy='scale' (and is required there), but got "
                         f"strategy={strategy!r}, factor={factor!r}.")
    n_random = check_positive_int("n_random", n_random)
    n_magnitude = check_positive_int("n_magnitude", n_magnitude, minimum=0)
    check_option("statistic", statistic, tuple(LOCALIZER_STATISTICS))
    localizer = localizer if isinstance(localizer, Paradigm) else load_paradigm(localizer)
    if out is not None:  # refuse an existing output before the work, not after
        early = OutputSet(out, overwrite=overwrite)
        early.add_json("summary.json", {})
        early.check()
    started = time.time()
    rec, tmp = _record_localizer(model, localizer, localizer_recording, sites, batch_size)
    try:
        stat = localizer_map(rec, contrast, statistic=statistic)
        network = top_k(stat, fraction=fraction, per_layer=per_layer,
                        label=f"{localizer.name}Top")
        logger.info("localizer_study: %s", network.describe())
        controls = {"random": random_controls(network, n_random, random_state=random_state)}
        mag = unit_magnitude(rec)
        if n_magnitude:
            controls["magnitude"] = random_controls(network, n_magnitude, magnitude=mag,
                                                    n_bins=magnitude_bins,
                                                    random_state=random_state + 1,
                                                    label="magnitude")
        if bottom:
            controls["bottom"] = [least_selective(stat, like=network)]
        text_sets = default_text_sets() if texts is None else texts
        task_list = [t if isinstance(t, Paradigm) else load_paradigm(t) for t in tasks or ()]
        conditions = [("intact", 0, None), ("lesion", 0, network)]
        conditions += [(kind, k, net) for kind, nets in controls.items()
                       for k, net in enumerate(nets)]
        reference = rec if strategy in ("mean", "noise", "resample") else None
        items = score_conditions(
            model, conditions,
            lambda net: lesion(model, Lesion(net, strategy, reference=reference, factor=factor,
                                             random_state=random_state)),
            texts=text_sets, tasks=task_list, batch_size=batch_size, max_length=max_length,
            who="localizer_study")
    finally:
        if tmp is not None:
            tmp.cleanup()
    behaviour = behaviour_table(items, random_state=random_state)
    summary = compare_conditions(behaviour, controls=tuple(controls))
    settings = {
        "localizer": localizer.name, "localizer_task": localizer.name, "contrast": contrast,
        "statistic": statistic, "statistic_description": LOCALIZER_STATISTICS[statistic],
        "fraction": fraction, "per_layer": per_layer, "sites": sites, "strategy": strategy,
        "factor": factor, "n_units": network.n_units, "n_total": network.n_total,
        "n_random": n_random,
        "n_magnitude": n_magnitude, "magnitude_bins": magnitude_bins, "bottom": bool(bottom),
        "random_state": random_state,
        "text_sets": {k: len(v) for k, v in (text_sets or {}).items()},
        "tasks": [t.name for t in task_list],
        "model": getattr(model, "llmfmri_info", {}).get("model_id"),
        "seconds": round(time.time() - started, 1),
        "ci": dict(CI_METHODS),
    }
    study = LesionStudy(stat, network, controls, items, behaviour, summary, settings,
                        magnitude=mag)
    if out is not None:
        study.save(out, overwrite=overwrite)
    return study
