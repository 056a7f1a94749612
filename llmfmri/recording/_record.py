"""``record``: run a paradigm through a model and stream per-token frames to disk."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import platform
from pathlib import Path

import numpy as np

from .._utils import atomic_write_json, check_option
from ..units import UnitSpace
from ._store import (RecordingConflictError, RunPaths, RunWriter, bids_label, identity_diff,
                     identity_hash)

logger = logging.getLogger("llmfmri")

__all__ = ["record"]

_PACKAGES = ("llmfmri", "torch", "transformers", "numpy", "zarr")


def _versions():
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def _prompt_seed(seed, run, prompt_id):
    digest = hashlib.sha256(f"{seed}:{run}:{prompt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _encode(tokenizer, text, chat_template):
    if chat_template:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                "The paradigm asks for the chat template (generation.chat_template: true), but "
                "this model's tokenizer has none; set chat_template: false for base models."
            )
        text = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                             add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"]


def _unit_space(adapter, sites, units):
    sizes = {s: adapter.site_size(s) for s in sites}
    indices = None
    if units is not None:
        if isinstance(units, dict):
            indices = {}
            for spec, idx in units.items():
                for s in adapter.expand_sites(spec):
                    indices[s] = np.asarray(idx, dtype=np.int64)
            extra = sorted(set(indices) - set(sizes))
            if extra:
                raise ValueError(f"units names sites {extra} that are not recorded (sites={sites}).")
        else:
            idx = np.asarray(units, dtype=np.int64)
            indices = {s: idx for s in sites}
    return UnitSpace(sizes, indices)


def record(model, paradigm, sites="resid_post", out=None, *, units=None, runs=None,
           batch_size=8, device="auto", dtype="float32", tokenizer=None, seed=None,
           overwrite=False, chunk_frames=256, progress=True):
    """Record a paradigm: one frame per token step, streamed to disk.

    For every run and prompt of the paradigm's schedule the model generates (or
    reads) and the chosen sites are captured by forward hooks: one frame per
    generated token -- the states of the step that produced it, the first step
    included -- and/or per prompt token, or one pooled frame per prompt, as the
    paradigm's ``frames`` says.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM (see :func:`llmfmri.load_model`); its ``tokenizer`` attribute
        is used unless ``tokenizer`` is given.
    paradigm : Paradigm or str or Path
        A paradigm or a YAML file.
    sites : str or list of str
        Components (``"resid_post"`` = every layer), site names
        (``"layers.3.mlp_act"``), ``"embed"`` or ``"all"``.
    out : str or Path
        Output directory (BIDS-derivative layout, see ``docs/recording.md``).
    units : array of int or dict, optional
        Record only these indices of each site (or a dict site -> indices).
    runs : list of int, optional
        Record only these runs (1-based; default all).
    batch_size : int
        Prompts per forward pass (ignored in continuous-context paradigms).
        A frame recorded in a batch equals the frame recorded alone to float tolerance.
    device : str
        ``"auto"`` (the model's device), ``"cpu"``, ``"cuda"``...
    dtype : {"float32", "float16"}
        Storage dtype; activations are cast once on the device.
    seed : int, optional
        Overrides the paradigm's generation seed.
    overwrite : bool
        Replace a different recording found in ``out``. A matching, interrupted
        recording is resumed; a complete run is left as it is.
    chunk_frames : int
        Frames per on-disk chunk.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Recording

    Examples
    --------
    >>> import llmfmri as lf
    >>> model = lf.load_model()  # doctest: +SKIP
    >>> rec = lf.record(model, "paradigms/functional_networks.yaml", out="runs/fn")  # doctest: +SKIP
    """
    import torch
    from tqdm.auto import tqdm

    from ..models import get_adapter
    from ..paradigm import Paradigm, load_paradigm
    from ._generate import _Capture, run_batch
    from ._reader import Recording

    if out is None:
        raise ValueError("out must name the output directory of the recording, e.g. out='runs/fn'.")
    if not isinstance(paradigm, Paradigm):
        paradigm = load_paradigm(paradigm)
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("record needs a tokenizer: load the model with llmfmri.load_model, or "
                         "pass tokenizer=.")
    check_option("dtype", str(dtype).replace("torch.", ""), ("float32", "float16", "bfloat16"))
    store_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float32}[
        str(dtype).replace("torch.", "")]
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, but got {batch_size!r}.")
    adapter = get_adapter(model)
    site_list = adapter.expand_sites(sites)
    space = _unit_space(adapter, site_list, units)
    model_device = next(model.parameters()).device
    dev = model_device if device in (None, "auto") else torch.device(device)
    if dev != model_device:
        model.to(dev)
    gen = paradigm.generation
    seed = int(gen.seed if seed is None else seed)
    mode = paradigm.frames
    continuous = paradigm.context == "continuous"

    out = Path(out)
    info = dict(getattr(model, "llmfmri_info", {}) or {})
    model_id = info.get("model_id") or getattr(model.config, "_name_or_path", None) or "model"
    subject = bids_label(model_id)
    task = bids_label(paradigm.name)
    units_sha = hashlib.sha256(space.table.to_csv(index=False).encode()).hexdigest()
    identity = {
        "model_id": model_id, "model_revision": info.get("revision"),
        "model_weights": info.get("weights_sha256") or info.get("seed"),
        "architecture": model.config.model_type, "paradigm": paradigm.name,
        "paradigm_sha256": paradigm.sha256, "sites": site_list, "units_sha256": units_sha,
        "dtype": str(np.dtype(store_dtype)), "frames": mode, "context": paradigm.context,
        "seed": seed,
    }
    _prepare_dataset(out, paradigm, space, identity, subject, task, overwrite)

    schedule = paradigm.schedule()
    run_labels = sorted(schedule["run"].unique().tolist())
    if runs is not None:
        unknown = sorted(set(runs) - set(run_labels))
        if unknown:
            raise ValueError(f"runs={list(runs)} names runs {unknown} that the paradigm does not "
                             f"have; its runs are {run_labels}.")
        run_labels = [r for r in run_labels if r in set(runs)]
    offsets, indices = {}, {}
    for site in site_list:
        cols = space.select(sites=site)  # contiguous: UnitSpace orders columns site by site
        offsets[site] = (int(cols[0]), int(cols[-1]) + 1)
        idx = space.table["index"].to_numpy()[cols]
        full = len(idx) == space.site_sizes[site] and np.array_equal(idx, np.arange(len(idx)))
        indices[site] = None if full else torch.as_tensor(idx, dtype=torch.long)
    capture_dtype = torch.float16 if store_dtype == np.float16 else torch.float32
    capture = _Capture(site_list, indices, offsets, space.n_units, capture_dtype, dev)
    provenance = {
        "model": info, "sites": site_list, "n_units": space.n_units, "frames": mode,
        "context": paradigm.context, "generation": _gen_dict(gen, seed), "batch_size": int(batch_size),
        "device": str(dev), "model_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "versions": _versions(), "paradigm_sha256": paradigm.sha256,
        "identity_sha256": identity_hash(identity),
    }

    for run in run_labels:
        rows = schedule[schedule["run"] == run].reset_index(drop=True)
        encoded = [_encode(tokenizer, t, gen.chat_template) for t in rows["prompt"]]
        max_frames = _frame_bound(encoded, mode, gen.max_new_tokens)
        paths = RunPaths(out, subject, task, run)

        def open_writer():
            return RunWriter(paths, n_units=space.n_units, max_frames=max_frames,
                             dtype=store_dtype, identity={**identity, "run": int(run)},
                             provenance=provenance, chunk_frames=chunk_frames,
                             overwrite=overwrite).open()

        writer = open_writer()
        if writer.status == "complete":
            logger.info("run %d already complete in %s; skipped", run, out)
            continue
        if continuous and writer.done_prompts:
            logger.warning("run %d: continuous-context runs restart from their first prompt "
                           "when resumed.", run)
            paths.remove()
            writer = open_writer()
        done = set(writer.done_prompts)
        todo = [i for i, pid in enumerate(rows["prompt_id"]) if pid not in done]
        if writer.status == "resumed":
            logger.warning("run %d: resuming after %d committed prompts (%d frames).",
                           run, len(done), writer.n_frames)
        bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc=f"run {run}",
                   unit="prompt", disable=not progress, leave=False)
        try:
            if continuous:
                _record_continuous(model, tokenizer, capture, rows, encoded, todo, writer, gen,
                                   mode, seed, dev, bar, run)
            else:
                for b0 in range(0, len(todo), int(batch_size)):
                    batch = todo[b0:b0 + int(batch_size)]
                    results = run_batch(
                        model, tokenizer, capture, [encoded[i] for i in batch], generation=gen,
                        mode=mode, seeds=[_prompt_seed(seed, run, rows["prompt_id"][i]) for i in batch],
                        device=dev)
                    _commit(writer, tokenizer, rows, batch, results, run)
                    bar.update(len(batch))
        finally:
            bar.close()
        writer.finalize()
        logger.info("run %d: %d frames x %d units -> %s", run, writer.n_frames, space.n_units,
                    writer.paths.bold)
    return Recording(out)


def _record_continuous(model, tokenizer, capture, rows, encoded, todo, writer, gen, mode, seed,
                       dev, bar, run):
    from ._generate import run_batch

    context = []
    for i in range(len(rows)):
        prompt = encoded[i] if not context else _strip_bos(tokenizer, encoded[i])
        ids = context + prompt
        res = run_batch(model, tokenizer, capture, [ids], generation=gen, mode=mode,
                        seeds=[_prompt_seed(seed, run, rows["prompt_id"][i])], device=dev,
                        n_prompt_frames=[len(prompt)])
        _commit(writer, tokenizer, rows, [i], res, run)
        context = ids + res[0]["generated_ids"]
        bar.update(1)


def _strip_bos(tokenizer, ids):
    bos = tokenizer.bos_token_id
    return ids[1:] if ids and bos is not None and ids[0] == bos else ids


def _commit(writer, tokenizer, rows, batch, results, run):
    frames, events = [], []
    onset = writer.n_frames
    for i, res in zip(batch, results):
        row = rows.iloc[i]
        n = res["frames"].shape[0]
        tokens = [tokenizer.decode([t]) if t >= 0 else "" for t in res["token_ids"].tolist()]
        for j in range(n):
            lp = float(res["logprobs"][j])
            events.append([onset + j, 1, row["trial_type"], int(row["block"]), int(run),
                           int(row["trial"]), row["prompt_id"], res["kinds"][j],
                           int(res["positions"][j]), tokens[j], int(res["token_ids"][j]),
                           None if np.isnan(lp) else lp, res["response"]])
        onset += n
        frames.append(res["frames"])
    writer.commit(np.concatenate(frames, axis=0) if frames else np.zeros((0, writer.n_units)),
                  events, [rows["prompt_id"][i] for i in batch])


def _frame_bound(encoded, mode, max_new_tokens):
    if mode == "generated":
        return len(encoded) * int(max_new_tokens)
    if mode in ("pooled_last", "pooled_mean"):
        return len(encoded)
    prompt = sum(len(e) for e in encoded)
    return prompt + (len(encoded) * int(max_new_tokens) if mode == "both" else 0)


def _gen_dict(gen, seed):
    return {"max_new_tokens": int(gen.max_new_tokens), "do_sample": bool(gen.do_sample),
            "temperature": float(gen.temperature), "top_p": float(gen.top_p), "seed": int(seed),
            "stop": list(gen.stop or ()), "chat_template": bool(gen.chat_template)}


def _prepare_dataset(out, paradigm, space, identity, subject, task, overwrite):
    """Write (or check) the dataset-level files: description, units, paradigm, identity."""
    from .._version import __version__

    dataset_id = dict(identity)
    rec_json = out / "recording.json"
    if rec_json.exists():
        old = json.loads(rec_json.read_text())
        if old.get("identity") != dataset_id:
            if not overwrite:
                diff = identity_diff(old.get("identity", {}), dataset_id)
                raise RecordingConflictError(
                    f"{out} already holds a different recording (differs in: {', '.join(diff)}). "
                    "Record into another directory, or pass overwrite=True (CLI: --overwrite) to "
                    "replace it."
                )
            _clear(out)
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RecordingConflictError(
                f"{out} exists and is not an llmfmri recording; choose an empty or new directory, "
                "or pass overwrite=True to replace its contents."
            )
        _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "dataset_description.json", {
        "Name": f"llmfmri recording: {paradigm.name} on {identity['model_id']}",
        "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "llmfmri", "Version": __version__}],
    })
    space.to_tsv(out / "units.tsv")
    paradigm.save(out / "paradigm.yaml", overwrite=True)
    atomic_write_json(rec_json, {"identity": dataset_id, "subject": subject, "task": task,
                                 "llmfmri_version": __version__})


def _clear(out):
    import shutil

    for child in Path(out).iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
