"""In-context recall (IOI-style names): the probability of the correct name against generic tokens.

The behavioural measure of Chen, Bruna & Bietti (2024; ``RESEARCH.md`` section
4): in "When Mary and John went to the store, John gave a drink to", the
correct next token is the indirect object " Mary", which only the context
gives; a model that leans on distributional associations puts its mass on
generic continuations (" the", " a", " his"...). Truncating late MLP matrices
is reported to move mass from generic tokens to the in-context answer.

The items are built programmatically with a fixed seed from the name list,
templates, places and objects below (no download).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_positive_int, check_random_state
from ..exceptions import DataError
from ._scoring import pad_id, pad_right

__all__ = ["IOI_NAMES", "IOI_TEMPLATES", "GENERIC_TOKENS", "recall_items", "score_recall",
           "recall_table"]

#: Common English first names (the IOI name pool; filtered to single tokens per tokenizer).
IOI_NAMES = (
    "Mary", "John", "Alice", "Bob", "James", "Michael", "Sarah", "David", "Emma", "Daniel",
    "Laura", "Paul", "Anna", "Mark", "Kate", "Peter", "Lisa", "Tom", "Rachel", "Steve",
    "Linda", "George", "Susan", "Frank", "Helen", "Jack", "Nancy", "Robert", "Karen", "Richard",
    "Emily", "Thomas", "Julia", "Andrew", "Sophie", "Chris", "Grace", "Kevin", "Amy", "Brian",
    "Jessica", "Eric", "Rose", "Adam", "Claire", "Henry", "Lucy", "Sam", "Hannah", "Jason",
    "Megan", "Ryan", "Olivia", "Scott", "Victoria", "Patrick", "Diana", "Sean", "Monica",
    "Jacob", "Natalie", "Tim", "Ruth", "Edward", "Anne", "Matthew", "Jane", "Joseph", "Ellen",
    "Charles", "Martha", "William", "Alex", "Carol", "Jeff", "Donna", "Greg", "Betty", "Carl",
    "Joan", "Dan", "Sharon", "Simon", "Amanda", "Ben", "Heather", "Gary", "Maria", "Luke",
)

#: IOI templates (Wang et al. 2022 style): {A} and {B} are introduced, {S} repeats one of them.
IOI_TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {object} to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give it to",
    "After {A} and {B} went to the {place}, {S} gave a {object} to",
    "Then, {A} and {B} had a lot of fun at the {place}. {S} gave a {object} to",
    "Friends {A} and {B} found a {object} at the {place}. {S} gave it to",
    "While {A} and {B} were working at the {place}, {S} gave a {object} to",
    "The {place} was quiet when {A} and {B} arrived. {S} handed a {object} to",
    "{A} and {B} spent the afternoon at the {place}, and then {S} passed the {object} to",
)
_PLACES = ("store", "garden", "school", "hospital", "station", "restaurant", "office", "park",
           "library", "market", "house", "beach")
_OBJECTS = ("drink", "book", "ring", "bag", "letter", "snack", "key", "ticket", "basket",
            "flower", "necklace", "computer")

#: Generic next tokens the IOI answer competes with (filtered to single tokens).
GENERIC_TOKENS = (" the", " a", " his", " her", " their", " them", " him", " it", " this", " an")


def _first_token(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if ids else None, len(ids)


def recall_items(n=100, *, seed=0, names=None, tokenizer=None, single_token=True):
    """IOI-style in-context recall items, built with a fixed seed.

    Each item draws a template, two distinct names A and B, a place and an
    object; the subject B is repeated and the answer is A, introduced first
    (``"ABBA"``: "When A and B went..., B gave ... to" -> A) or second
    (``"BABA"``: "When B and A went..., B gave ... to" -> A), alternating
    (Wang et al. 2022).

    Parameters
    ----------
    n : int, default=100
    seed : int, default=0
    names : list of str, optional
        Default :data:`IOI_NAMES`.
    tokenizer : optional
        With ``single_token``, keep only names that are one token after a
        space (" Mary"), and pairs whose first tokens differ.
    single_token : bool, default=True

    Returns
    -------
    pandas.DataFrame
        ``item, template, order, prompt, answer, subject`` (names without
        the leading space), in generation order (the first fraction is the
        validation split of :func:`truncation_search`).
    """
    n = check_positive_int("n", n)
    rng = check_random_state(seed)
    pool = list(IOI_NAMES if names is None else names)
    if tokenizer is not None and single_token:
        pool = [p for p in pool if _first_token(tokenizer, " " + p)[1] == 1]
    if len(set(pool)) < 2:
        raise DataError(f"recall_items needs at least 2 distinct names, but {len(set(pool))} "
                        "remain (single-token names for this tokenizer); give names= or "
                        "single_token=False.")
    first = ({p: _first_token(tokenizer, " " + p)[0] for p in pool}
             if tokenizer is not None and single_token else None)
    if first is not None and len(set(first.values())) < 2:
        raise DataError("Every name starts with the same token for this tokenizer; give other "
                        "names= or single_token=False.")
    rows = []
    for k in range(n):
        t = int(rng.integers(len(IOI_TEMPLATES)))
        while True:
            a, b = rng.choice(len(pool), size=2, replace=False)
            a, b = pool[a], pool[b]
            if first is None or first[a] != first[b]:
                break
        order = "ABBA" if k % 2 == 0 else "BABA"
        x, y = (a, b) if order == "ABBA" else (b, a)
        prompt = IOI_TEMPLATES[t].format(A=x, B=y, S=b, place=_PLACES[rng.integers(len(_PLACES))],
                                         object=_OBJECTS[rng.integers(len(_OBJECTS))])
        rows.append({"item": k, "template": t, "order": order, "prompt": prompt, "answer": a,
                     "subject": b})
    return pd.DataFrame(rows)


def score_recall(model, items, *, tokenizer=None, generic=GENERIC_TOKENS, batch_size=16):
    """The next-token probability of the correct name, the repeated name and generic tokens.

    Run it inside a lesion (:func:`truncate`, :func:`weight_lesion`,
    :func:`lesion`) to score the lesioned model. A name's probability is that
    of the tokens of ``" " + name`` after the prompt (one token for the names
    :func:`recall_items` keeps with a tokenizer; several tokens are scored by
    teacher forcing, the product of their probabilities). Generic tokens are
    scored by their first token.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    items : pandas.DataFrame
        :func:`recall_items` (``prompt, answer, subject``).
    tokenizer : optional
        Default ``model.tokenizer``.
    generic : list of str, default=GENERIC_TOKENS
        Generic continuations (first token of each).
    batch_size : int, default=16

    Returns
    -------
    pandas.DataFrame
        ``items``' columns plus ``p_correct``, ``p_subject``, ``p_generic``
        (summed over the generic tokens), ``max_generic``, ``logit_diff``
        (log p_correct - log p_subject), ``correct`` (1.0 when the answer
        beats every generic token and the subject, else 0.0),
        ``beats_generic`` and ``beats_subject`` (1/0).
    """
    import torch

    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("score_recall needs a tokenizer: load the model with llmfmri.load_model "
                         "or pass tokenizer=.")
    missing = [c for c in ("prompt", "answer", "subject") if c not in items.columns]
    if missing:
        raise DataError(f"items lack the column {missing[0]!r} (columns: {list(items.columns)});"
                        " build them with recall_items.")
    batch_size = check_positive_int("batch_size", batch_size)
    gen_ids = sorted({_first_token(tokenizer, g)[0] for g in generic} - {None})
    if not gen_ids:
        raise DataError("generic has no token; give strings such as ' the'.")
    ans = [tokenizer(" " + a, add_special_tokens=False)["input_ids"] for a in items["answer"]]
    sub = [tokenizer(" " + b, add_special_tokens=False)["input_ids"] for b in items["subject"]]
    prompts = [tokenizer(p)["input_ids"] for p in items["prompt"]]
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    probs = np.zeros((len(prompts), 2 + len(gen_ids)))
    # one pass per sequence: the prompt (+ a multi-token name, teacher-forced)
    seqs = [(k, None, prompts[k]) for k in range(len(prompts))]
    for col, names in ((0, ans), (1, sub)):
        seqs += [(k, col, prompts[k] + names[k][:-1]) for k in range(len(prompts))
                 if len(names[k]) > 1]
    with torch.no_grad():
        for b0 in range(0, len(seqs), batch_size):
            batch = seqs[b0:b0 + batch_size]
            ids, mask = pad_right([q for _, _, q in batch], pad)
            logp = torch.log_softmax(model(input_ids=ids.to(device),
                                           attention_mask=mask.to(device),
                                           use_cache=False).logits.float(), -1).double().cpu()
            for i, (k, col, q) in enumerate(batch):
                if col is None:
                    last = logp[i, len(prompts[k]) - 1]
                    probs[k, 2:] = last[gen_ids].exp().numpy()
                    for c, names in ((0, ans), (1, sub)):
                        if len(names[k]) == 1:
                            probs[k, c] = float(last[names[k][0]].exp())
                else:
                    names = ans if col == 0 else sub
                    n0 = len(prompts[k])
                    tgt = torch.as_tensor(names[k])
                    lp = logp[i, n0 - 1:n0 - 1 + tgt.numel()].gather(-1, tgt[:, None]).sum()
                    probs[k, col] = float(lp.exp())
    out = items.copy()
    out["p_correct"], out["p_subject"] = probs[:, 0], probs[:, 1]
    out["p_generic"] = probs[:, 2:].sum(axis=1)
    out["max_generic"] = probs[:, 2:].max(axis=1)
    with np.errstate(divide="ignore"):
        out["logit_diff"] = np.log(probs[:, 0]) - np.log(probs[:, 1])
    out["beats_generic"] = (probs[:, 0] > probs[:, 2:].max(axis=1)).astype(float)
    out["beats_subject"] = (probs[:, 0] > probs[:, 1]).astype(float)
    out["correct"] = out["beats_generic"] * out["beats_subject"]
    return out


def recall_table(scores, *, by=None, confidence=0.95):
    """Accuracy (Wilson interval over items) and mean probabilities of scored recall items.

    Returns
    -------
    pandas.DataFrame
        ``[by], n_items, accuracy, ci_low, ci_high, beats_generic,
        beats_subject, p_correct, p_subject, p_generic, logit_diff``.
    """
    from ._behaviour import wilson_interval

    groups = [("all", scores)] if by is None else list(scores.groupby(by, sort=False))
    rows = []
    for key, g in groups:
        k, n = int(g["correct"].sum()), int(len(g))
        lo, hi = wilson_interval(k, n, confidence)
        rows.append({(by or "group"): key, "n_items": n, "accuracy": k / n if n else np.nan,
                     "ci_low": lo, "ci_high": hi,
                     "beats_generic": float(g["beats_generic"].mean()),
                     "beats_subject": float(g["beats_subject"].mean()),
                     "p_correct": float(g["p_correct"].mean()),
                     "p_subject": float(g["p_subject"].mean()),
                     "p_generic": float(g["p_generic"].mean()),
                     "logit_diff": float(g["logit_diff"].mean())})
    return pd.DataFrame(rows)
