"""Behaviour measured by running the model (under a lesion or not): text NLL and answers."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import check_positive_int, logger, progress_bar
from ..exceptions import DataError
from ._behaviour import SCORE_COLUMNS, score_recording

__all__ = ["load_texts", "score_texts", "score_answers", "score_gold", "context_limit"]

#: config attributes that bound the positions a model reads, most specific first
_LIMIT_ATTRS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length",
                "seq_length", "max_seq_len")


def context_limit(model, tokenizer=None):
    """The most positions ``model`` reads (config, else the tokenizer's ``model_max_length``)."""
    config = getattr(model, "config", None)
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is None:
            continue
        for attr in _LIMIT_ATTRS:
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10 ** 7:
        return value
    return None


def _read_lines(path):
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def load_texts(source, *, split="lines", conditions=None):
    """Text sets for perplexity: ``{name: [text, ...]}``.

    Parameters
    ----------
    source : str, Path, Paradigm, list of str or mapping
        A paradigm (a library name such as ``"domains"``, a YAML file or a
        :class:`~llmfmri.paradigm.Paradigm`): one set per condition, its
        prompts as items (``domains``: the passages). A ``.txt`` file: one
        set named after the file, one item per non-empty line (lines starting
        with ``#`` are skipped), or the whole file as one item with
        ``split=None`` (long texts are scored with a sliding window). A
        ``.tsv`` file: its ``prompt`` column. A list of strings (one set,
        ``"texts"``) or a mapping ``{name: list of str or str}``.
    split : {"lines", None}, default="lines"
        How a ``.txt`` file is cut into items.
    conditions : list of str, optional
        Keep only these conditions of a paradigm.

    Returns
    -------
    dict of str to list of str
    """
    from ..paradigm import Paradigm, load_paradigm

    if isinstance(source, Mapping):
        out = {}
        for name, texts in source.items():
            texts = [texts] if isinstance(texts, str) else list(texts)
            if not texts or not all(isinstance(t, str) for t in texts):
                raise DataError(f"Text set {name!r} must be a non-empty list of strings.")
            out[str(name)] = texts
        return out
    if isinstance(source, (list, tuple)):
        return load_texts({"texts": list(source)})
    if isinstance(source, (str, Path)) and Path(source).suffix in (".txt", ".tsv"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"Text file {path} does not exist.")
        if path.suffix == ".tsv":
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
            if "prompt" not in table.columns:
                raise DataError(f"{path} has no 'prompt' column; columns are "
                                f"{list(table.columns)}.")
            texts = [t for t in table["prompt"] if t.strip()]
        elif split == "lines":
            texts = _read_lines(path)
        elif split is None:
            texts = [path.read_text(encoding="utf-8")]
        else:
            raise ValueError(f"split must be 'lines' or None, but got {split!r}.")
        if not texts:
            raise DataError(f"Text file {path} holds no text.")
        return {path.stem: texts}
    paradigm = source if isinstance(source, Paradigm) else load_paradigm(source)
    names = list(paradigm.conditions) if conditions is None else list(conditions)
    unknown = [c for c in names if c not in paradigm.conditions]
    if unknown:
        from .._utils import did_you_mean

        raise DataError(f"Paradigm {paradigm.name!r} has no condition {unknown[0]!r}; its "
                        f"conditions are {list(paradigm.conditions)}."
                        + did_you_mean(unknown[0], paradigm.conditions))
    return {c: list(paradigm.conditions[c].prompts) for c in names}


def _windows(ids, max_length, stride):
    """Sliding windows over ``ids``: ``(window ids, first scored position in the window)``.

    Every token after the first is scored exactly once, with at least
    ``max_length - stride`` tokens of context once the text is longer than a
    window (the Hugging Face perplexity recipe).
    """
    n = len(ids)
    if n <= max_length:
        return [(ids, 1)]
    out, prev_end = [], 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        first = max(prev_end - begin, 1)  # positions scored for the first time
        out.append((ids[begin:end], first))
        prev_end = end
        if end == n:
            break
    return out


def pad_id(tokenizer):
    """The id padding a batch: the tokenizer's pad token, else 0 (padding is masked out)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def pad_right(seqs, pad):
    """Token-id sequences as one right-padded batch.

    Returns
    -------
    ids, mask : torch.LongTensor of shape (len(seqs), longest)
        ``ids`` holds each sequence from position 0 then ``pad``; ``mask`` is 1
        on the sequence, 0 on the padding (the ``attention_mask``).
    """
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def score_texts(model, texts, *, tokenizer=None, max_length=None, stride=None, batch_size=8,
                progress=False):
    """Token-level negative log-likelihood of each text, with a sliding window.

    Each text is read in a fresh context; every token after the first is
    scored given the tokens before it (the tokenizer's BOS, when it adds one,
    gives the first token a context). Texts longer than ``max_length``
    tokens (default: the model's context limit) are scored with windows of
    ``max_length`` tokens moved by ``stride`` (default ``max_length // 2``):
    every token is scored once, with at least ``max_length - stride`` tokens
    of context. Run it inside :func:`lesion` to score the lesioned model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    texts : mapping, list of str, str or Path
        Text sets (see :func:`load_texts`).
    tokenizer : optional
        Default ``model.tokenizer``.
    max_length, stride : int, optional
    batch_size : int, default=8
        Windows per forward pass (right-padded; pads are never scored).
    progress : bool, default=False

    Returns
    -------
    pandas.DataFrame
        One row per text: ``text_set``, ``item`` (0-based), ``n_tokens``
        (scored), ``nll`` (nats, summed), ``n_chars``.
    """
    import torch

    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("score_texts needs a tokenizer: load the model with llmfmri.load_model "
                         "or pass tokenizer=.")
    sets = texts if isinstance(texts, dict) else load_texts(texts)
    sets = load_texts(sets)
    limit = context_limit(model, tokenizer)
    max_length = check_positive_int("max_length", max_length if max_length is not None
                                    else (limit or 1024), minimum=2)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the model's context limit {limit}.")
    stride = check_positive_int("stride", stride if stride is not None else max(1, max_length // 2))
    if stride > max_length - 1:
        raise ValueError(f"stride must be < max_length ({max_length}), but got {stride}.")
    batch_size = check_positive_int("batch_size", batch_size)
    jobs = []  # (row, window ids, first scored position)
    rows = []
    for name, items in sets.items():
        for k, text in enumerate(items):
            ids = tokenizer(text)["input_ids"]
            rows.append({"text_set": name, "item": k, "n_tokens": 0, "nll": 0.0,
                         "n_chars": len(text)})
            for win, first in _windows(ids, max_length, stride):
                if len(win) > first:
                    jobs.append((len(rows) - 1, win, first))
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    order = sorted(range(len(jobs)), key=lambda j: len(jobs[j][1]))  # less padding
    bar = progress_bar(total=len(jobs), desc="score texts", unit="window", verbose=progress)
    try:
        with torch.no_grad():
            for b0 in range(0, len(order), batch_size):
                batch = [jobs[j] for j in order[b0:b0 + batch_size]]
                ids, mask = pad_right([w for _, w, _ in batch], pad)
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                               use_cache=False).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                target = ids[:, 1:].to(device)
                tok_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).cpu().double()
                for i, (row, w, first) in enumerate(batch):
                    lp = tok_lp[i, first - 1:len(w) - 1]
                    rows[row]["nll"] += float(-lp.sum())
                    rows[row]["n_tokens"] += int(lp.numel())
                bar.update(len(batch))
    finally:
        bar.close()
    table = pd.DataFrame(rows, columns=["text_set", "item", "n_tokens", "nll", "n_chars"])
    if not np.isfinite(table["nll"]).all():
        logger.warning("score_texts: some texts have an infinite NLL (a token of probability 0)")
    return table


def score_answers(model, paradigm, *, runs=None, batch_size=16, tokenizer=None):
    """Generate the answers of a paradigm's prompts and score them against the gold answers.

    Records the paradigm (its own generation settings: greedy by default, its
    ``max_new_tokens`` and stop strings) into a temporary folder, keeping one
    unit only, and scores the recorded responses with
    :func:`score_recording`. Run it inside :func:`lesion` to score the
    lesioned model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    paradigm : Paradigm or str
        With gold answers (``answers`` / the TSV ``answer`` column), e.g.
        ``"multiple_demand"``, ``"theory_of_mind"``, ``"template"``.
    runs : list of int, optional
    batch_size : int, default=16

    Returns
    -------
    pandas.DataFrame
        One row per prompt (:data:`SCORE_COLUMNS`) plus ``paradigm``;
        prompts without a gold answer have ``correct`` NaN.
    """
    from ..paradigm import Paradigm, load_paradigm
    from ..recording import record

    paradigm = paradigm if isinstance(paradigm, Paradigm) else load_paradigm(paradigm)
    if not any(c.answers for c in paradigm.conditions.values()):
        raise DataError(f"Paradigm {paradigm.name!r} has no gold answers (Condition.answers); "
                        "give one with answers, e.g. 'multiple_demand'.")
    with tempfile.TemporaryDirectory(prefix="llmfmri-answers-") as tmp:
        rec = record(model, paradigm, sites="embed", out=Path(tmp) / "rec", units=[0],
                     runs=runs, batch_size=batch_size, tokenizer=tokenizer, progress=False)
        table = score_recording(rec, paradigm=paradigm, frame_kind="generated")
    table.insert(0, "paradigm", paradigm.name)
    return table[["paradigm", *SCORE_COLUMNS]]


def _encode(tokenizer, text, chat_template):
    """Prompt ids as ``record`` makes them (the chat template when the paradigm asks for it)."""
    if chat_template:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("The paradigm asks for the chat template, but this model's "
                             "tokenizer has none; set chat_template: false for base models.")
        text = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                             add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"]


def _continuation_nll(model, pairs, batch_size):
    """Summed NLL of each continuation given its prompt: ``pairs`` of (prompt ids, cont ids)."""
    import torch

    device = next(model.parameters()).device
    out = np.zeros(len(pairs))
    order = sorted(range(len(pairs)), key=lambda j: len(pairs[j][0]) + len(pairs[j][1]))
    with torch.no_grad():
        for b0 in range(0, len(order), batch_size):
            batch = order[b0:b0 + batch_size]
            ids, mask = pad_right([pairs[j][0] + pairs[j][1] for j in batch], 0)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           use_cache=False).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tok = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu().double()
            for i, j in enumerate(batch):
                n_p, n_c = len(pairs[j][0]), len(pairs[j][1])
                out[j] = float(-tok[i, n_p - 1:n_p - 1 + n_c].sum())
    return out


def score_gold(model, paradigm, *, runs=None, choices="auto", max_choices=4, batch_size=16,
               tokenizer=None):
    """The log-probability of each gold answer, and forced-choice accuracy among few answers.

    Each prompt is read once with its gold answer appended (``" " + answer``
    unless the prompt ends in whitespace): the answer's NLL given the prompt
    is a graded measure of the behaviour even where greedy answers are at the
    floor. With ``choices``, every candidate answer is scored the same way
    and the most probable one is the model's choice (forced choice: e.g.
    True / False for ``theory_of_mind``, chance 1 / n_choices). Run it inside
    :func:`lesion` to score the lesioned model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    paradigm : Paradigm or str
        With gold answers.
    runs : list of int, optional
    choices : "auto", list of str or None, default="auto"
        ``"auto"``: the paradigm's distinct gold answers when there are at
        most ``max_choices`` of them (else no forced choice).
    max_choices : int, default=4
    batch_size : int, default=16

    Returns
    -------
    pandas.DataFrame
        One row per prompt with a gold answer: ``paradigm, run, prompt_id,
        trial_type, answer, nll`` (summed over the answer's tokens),
        ``n_tokens``, ``choice`` and ``correct`` (NaN without choices).
    """
    from ..paradigm import Paradigm, load_paradigm

    paradigm = paradigm if isinstance(paradigm, Paradigm) else load_paradigm(paradigm)
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("score_gold needs a tokenizer: load the model with llmfmri.load_model "
                         "or pass tokenizer=.")
    sched = paradigm.schedule()
    if runs is not None:
        sched = sched[sched["run"].isin([runs] if np.ndim(runs) == 0 else list(runs))]
    sched = sched[sched["answer"].notna()].reset_index(drop=True)
    if sched.empty:
        raise DataError(f"Paradigm {paradigm.name!r} has no gold answers (Condition.answers); "
                        "give one with answers, e.g. 'theory_of_mind'.")
    answers = [str(a) for a in sched["answer"]]
    if choices == "auto":
        distinct = sorted(set(answers))
        choices = distinct if 2 <= len(distinct) <= max_choices else None
    elif choices is not None:
        choices = [str(c) for c in choices]
        missing = sorted(set(answers) - set(choices))
        if missing:
            raise DataError(f"choices {choices} do not include the gold answers {missing[:3]}.")
    chat = bool(paradigm.generation.chat_template)
    prompts = [_encode(tokenizer, t, chat) for t in sched["prompt"]]
    sep = ["" if t[-1:].isspace() else " " for t in sched["prompt"]]
    cands = choices or []

    def cont(k, text):
        return tokenizer(sep[k] + text, add_special_tokens=False)["input_ids"]

    pairs = [(prompts[k], cont(k, a)) for k, a in enumerate(answers)]
    pairs += [(prompts[k], cont(k, c)) for k in range(len(prompts)) for c in cands]
    nll = _continuation_nll(model, pairs, check_positive_int("batch_size", batch_size))
    n = len(prompts)
    table = pd.DataFrame({"paradigm": paradigm.name, "run": sched["run"].astype(int),
                          "prompt_id": sched["prompt_id"], "trial_type": sched["trial_type"],
                          "answer": answers, "nll": nll[:n],
                          "n_tokens": [len(p[1]) for p in pairs[:n]]})
    if cands:
        per = nll[n:].reshape(n, len(cands))
        table["choice"] = [cands[i] for i in per.argmin(axis=1)]
        table["correct"] = (table["choice"] == table["answer"]).astype(float)
    else:
        table["choice"] = None
        table["correct"] = np.nan
    return table
