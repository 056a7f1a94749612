"""``record``: run a paradigm through a model and stream per-token frames to disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import (atomic_write_json, check_option, check_positive_int, logger,
                      package_versions, progress_bar, use_log_level, warn)
from ..exceptions import ContextLengthError, StorageWarning
from ..io import RunPaths, bids_label
from ..units import UnitSpace
from ._lock import LOCK_FILES, recording_lock
from ._store import RecordingConflictError, RunWriter, identity_diff, identity_hash

__all__ = ["record"]

_PACKAGES = ("llmfmri", "torch", "transformers", "numpy", "zarr")


def _versions():
    return package_versions(_PACKAGES)


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


#: config attributes that bound the positions a model reads, most specific first
_LIMIT_ATTRS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length",
                "seq_length", "max_seq_len")


def _context_limit(model, tokenizer):
    """The most positions ``model`` reads, and where that number comes from.

    GPT-2 (``n_positions``) and OPT (``max_position_embeddings``) have learned
    position tables and fail past them; GPT-NeoX and LLaMA (rotary) have no
    table but are trained and configured up to ``max_position_embeddings``,
    the limit held to here too. Without any config value, the tokenizer's
    ``model_max_length`` is used when it is a real number (not the
    "very large" placeholder of tokenizers without one).

    Returns
    -------
    limit : int or None
    source : str or None
        E.g. ``"config.n_positions"``.
    """
    config = getattr(model, "config", None)
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is None:
            continue
        aliases = getattr(cfg, "attribute_map", {}) or {}
        for attr in _LIMIT_ATTRS:
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value, f"config.{aliases.get(attr, attr)}"
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10 ** 7:
        return value, "tokenizer.model_max_length"
    return None, None


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
                raise ValueError(
                    f"units names sites {extra} that are not recorded (sites={sites}).")
        else:
            idx = np.asarray(units, dtype=np.int64)
            indices = {s: idx for s in sites}
    return UnitSpace(sizes, indices)


def record(model, paradigm, sites="resid_post", out=None, *, units=None, runs=None,
           batch_size=8, device="auto", dtype="float32", tokenizer=None, seed=None,
           overwrite=False, chunk_frames=256, progress=True, verbose=None):
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
    dtype : {"float32", "float16", "bfloat16"}
        Storage dtype. Activations are captured in float32 on the device (exact
        for float32, bfloat16 and float16 models) and copied to the host once per
        batch; ``"float16"`` halves the store, and values beyond its range
        (+-65,504, e.g. "massive activations") become +-inf: a
        :class:`~llmfmri.exceptions.StorageWarning` then says how many, where
        and how large, once per run (also in the run's sidecar,
        ``storage_losses``). ``"bfloat16"`` is stored as float32 (lossless).
    seed : int, optional
        Overrides the paradigm's generation seed.
    overwrite : bool
        Replace a different recording found in ``out``. A matching, interrupted
        recording is resumed; a complete run is left as it is.
    chunk_frames : int
        Frames per on-disk chunk.
    progress : bool, default=True
        Show a tqdm progress bar per run.
    verbose : None, bool or int, optional
        Log what is recorded (INFO) for this call; see :func:`llmfmri.set_verbose`.

    Returns
    -------
    Recording

    Raises
    ------
    ValueError
        For bad arguments (``out`` missing, unknown runs, ``batch_size`` < 1...).
    llmfmri.exceptions.ContextLengthError
        When a prompt plus ``max_new_tokens`` (or, with ``context: continuous``,
        the growing context) needs more positions than the model has, naming
        the prompt; checked for every prompt before anything is written.
    llmfmri.exceptions.RecordingConflictError
        When ``out`` holds a different recording and ``overwrite`` is False.
    llmfmri.exceptions.RecordingLockedError
        When another process is recording into ``out`` (one writer at a time;
        ``Recording`` readers are never blocked).

    Warns
    -----
    llmfmri.exceptions.StorageWarning
        When ``dtype="float16"`` cannot hold some values (see ``dtype``), and when a
        float64 model is recorded (its frames are rounded to the storage dtype).

    Examples
    --------
    >>> import llmfmri as lf
    >>> model = lf.load_model()  # doctest: +SKIP
    >>> rec = lf.record(model, "paradigms/functional_networks.yaml",
    ...                 out="runs/fn")  # doctest: +SKIP
    """
    with use_log_level(verbose):
        session = _Session.open(model, paradigm, sites, out, units=units, runs=runs,
                                batch_size=batch_size, device=device, dtype=dtype,
                                tokenizer=tokenizer, seed=seed, overwrite=overwrite,
                                chunk_frames=chunk_frames, progress=progress)
        with recording_lock(session.out):  # one writer per directory, until we return
            session.prepare()
            for run in session.run_labels:
                session.record_run(run)
    from ._reader import Recording

    return Recording(session.out)


class _Session:
    """Everything one ``record`` call needs, checked before anything is written.

    :meth:`open` checks (arguments, sites, the output directory, every prompt
    against the model's context) and writes nothing; :meth:`prepare` writes
    the dataset files, under the directory's lock.
    """

    @classmethod
    def open(cls, model, paradigm, sites, out, *, units, runs, batch_size, device, dtype,
             tokenizer, seed, overwrite, chunk_frames, progress):
        import torch

        from ..models import get_adapter
        from ..paradigm import Paradigm, load_paradigm
        from ._generate import _Capture

        self = cls()
        if out is None:
            raise ValueError(
                "out must name the output directory of the recording, e.g. out='runs/fn'.")
        if not isinstance(paradigm, Paradigm):
            paradigm = load_paradigm(paradigm)
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("record needs a tokenizer: load the model with llmfmri.load_model, "
                             "or pass tokenizer=.")
        dtype = check_option("dtype", str(dtype).replace("torch.", ""),
                             ("float32", "float16", "bfloat16"))
        self.store_dtype = {"float32": np.float32, "float16": np.float16,
                            "bfloat16": np.float32}[dtype]
        self.batch_size = check_positive_int("batch_size", batch_size)
        adapter = get_adapter(model)
        self.site_list = adapter.expand_sites(sites)
        self.space = _unit_space(adapter, self.site_list, units)
        model_device = next(model.parameters()).device
        self.device = model_device if device in (None, "auto") else torch.device(device)
        if self.device != model_device:
            model.to(self.device)
        self.model, self.tokenizer, self.paradigm = model, tokenizer, paradigm
        self.gen = paradigm.generation
        self.seed = int(self.gen.seed if seed is None else seed)
        self.mode = paradigm.frames
        self.continuous = paradigm.context == "continuous"
        self.out = Path(out)
        self.overwrite, self.chunk_frames, self.progress = overwrite, chunk_frames, progress
        self.schedule = paradigm.schedule()
        self.run_labels = _select_runs(self.schedule, runs)
        self._identity_and_provenance()
        _check_dataset(self.out, self.identity, self.subject, overwrite)
        self.encoded = {}
        for run in self.run_labels:
            rows = self.schedule[self.schedule["run"] == run]
            self.encoded[run] = [_encode(tokenizer, t, self.gen.chat_template)
                                 for t in rows["prompt"]]
        self._check_context()
        offsets, indices = _capture_layout(self.space, self.site_list)
        # captured in float32 (exact for float32, bfloat16 and float16 models; float64 models
        # in float64); a narrower store is cast on the host, where what it cannot hold is
        # counted (RunWriter.commit)
        wide = next(model.parameters()).dtype == torch.float64
        if wide:
            warn(f"The model computes in float64, but frames are stored in "
                 f"{np.dtype(self.store_dtype)} (dtype={dtype!r}): every value is rounded to "
                 f"{np.finfo(self.store_dtype).nmant + 1} bits of precision (relative error up "
                 f"to {np.finfo(self.store_dtype).eps / 2:.1e}); values beyond "
                 f"+-{float(np.finfo(self.store_dtype).max):.4g} would become +-inf and are "
                 "reported per run. Load the model in float32 to record it exactly.",
                 StorageWarning)
        self.capture = _Capture(self.site_list, indices, offsets, self.space.n_units,
                                torch.float64 if wide else torch.float32, self.device)
        return self

    def prepare(self):
        """Write (or check again, now under the lock) the dataset-level files."""
        _prepare_dataset(self.out, self.paradigm, self.space, self.identity, self.subject,
                         self.task, self.overwrite)

    def _check_context(self):
        """Every prompt (and a continuous context's growth) within the model's positions."""
        limit, source = _context_limit(self.model, self.tokenizer)
        self.context_limit = limit
        if limit is None:
            logger.info("record: %s states no context length; prompts are not checked",
                        self.identity["model_id"])
            return
        T = int(self.gen.max_new_tokens)
        extra = max(T - 1, 0)  # the last generated token is never read back
        model = f"{self.identity['model_id']} reads at most {limit} positions ({source})"
        long = []
        for run in self.run_labels:
            rows = self.schedule[self.schedule["run"] == run].reset_index(drop=True)
            context = 0
            for i, ids in enumerate(self.encoded[run]):
                pid = rows["prompt_id"][i]
                if not self.continuous:
                    if len(ids) + extra > limit:
                        long.append((run, pid, rows["trial_type"][i], len(ids), len(ids) + extra))
                    continue
                n_new = len(ids) if i == 0 else len(_strip_bos(self.tokenizer, ids))
                need = context + n_new + extra
                if need > limit:
                    raise ContextLengthError(
                        f"In run {run}, the continuous context reaches up to {need} positions at "
                        f"prompt {pid!r} (prompt {i + 1} of {len(rows)}: {context} positions for "
                        f"the {i} prompts before it and up to {T} tokens generated after each, "
                        f"{n_new} for this prompt and up to {extra} more while generating), but "
                        f"{model}. Nothing was written. Present fewer prompts per run (more "
                        "runs), lower generation.max_new_tokens, use context: independent, or a "
                        "model with a longer context."
                    )
                context += n_new + T
        if long:
            run, pid, cond, n, need = long[0]
            more = (f" The others: {', '.join(repr(x[1]) for x in long[1:6])}"
                    f"{' ...' if len(long) > 6 else ''}." if len(long) > 1 else "")
            raise ContextLengthError(
                f"{len(long)} prompt{'s are' if len(long) > 1 else ' is'} too long for the "
                f"model: {model}, and a prompt of n tokens with max_new_tokens={T} needs n + "
                f"{extra}. Prompt {pid!r} (run {run}, condition {cond!r}) has {n} tokens and "
                f"needs {need}.{more} Nothing was written. Shorten "
                f"{'them' if len(long) > 1 else 'it'}, lower generation.max_new_tokens, or use "
                "a model with a longer context."
            )

    def _identity_and_provenance(self):
        model, paradigm, space = self.model, self.paradigm, self.space
        info = dict(getattr(model, "llmfmri_info", {}) or {})
        model_id = info.get("model_id") or getattr(model.config, "_name_or_path", None) or "model"
        self.subject = bids_label(model_id)
        self.task = bids_label(paradigm.name)
        units_sha = hashlib.sha256(space.table.to_csv(index=False).encode()).hexdigest()
        self.identity = {
            "model_id": model_id, "model_revision": info.get("revision"),
            "model_weights": info.get("weights_sha256") or info.get("seed"),
            "architecture": model.config.model_type, "paradigm": paradigm.name,
            "paradigm_sha256": paradigm.sha256, "sites": self.site_list,
            "units_sha256": units_sha, "dtype": str(np.dtype(self.store_dtype)),
            "frames": self.mode, "context": paradigm.context, "seed": self.seed,
        }
        self.provenance = {
            "model": info, "sites": self.site_list, "n_units": space.n_units, "frames": self.mode,
            "context": paradigm.context, "generation": _gen_dict(self.gen, self.seed),
            "batch_size": self.batch_size, "device": str(self.device),
            "model_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "versions": _versions(), "paradigm_sha256": paradigm.sha256,
            "identity_sha256": identity_hash(self.identity),
        }

    def _open_writer(self, paths, run, max_frames):
        return RunWriter(paths, n_units=self.space.n_units, max_frames=max_frames,
                         dtype=self.store_dtype, identity={**self.identity, "run": int(run)},
                         provenance=self.provenance, chunk_frames=self.chunk_frames,
                         overwrite=self.overwrite).open()

    def record_run(self, run):
        """Record (or resume, or skip if complete) one run."""
        rows = self.schedule[self.schedule["run"] == run].reset_index(drop=True)
        encoded = self.encoded[run]
        max_frames = _frame_bound(encoded, self.mode, self.gen.max_new_tokens)
        paths = RunPaths(self.out, self.subject, self.task, run)
        writer = self._open_writer(paths, run, max_frames)
        if writer.status == "complete":
            logger.info("run %d already complete in %s; skipped", run, self.out)
            return
        if self.continuous and writer.done_prompts:
            logger.warning("run %d: continuous-context runs restart from their first prompt "
                           "when resumed.", run)
            paths.remove()
            writer = self._open_writer(paths, run, max_frames)
        done = set(writer.done_prompts)
        todo = [i for i, pid in enumerate(rows["prompt_id"]) if pid not in done]
        if writer.status == "resumed":
            logger.warning("run %d: resuming after %d committed prompts (%d frames).",
                           run, len(done), writer.n_frames)
        bar = progress_bar(total=len(rows), initial=len(rows) - len(todo), desc=f"run {run}",
                           unit="prompt", verbose=self.progress)
        try:
            if self.continuous:
                self._record_continuous(rows, encoded, writer, bar, run)
            else:
                self._record_batches(rows, encoded, todo, writer, bar, run)
        finally:
            bar.close()
        losses = writer.finalize()
        if losses:
            self._warn_losses(run, writer, losses)
        logger.info("run %d: %d frames x %d units -> %s", run, writer.n_frames,
                    self.space.n_units, writer.paths.bold)

    def _warn_losses(self, run, writer, losses):
        cols = losses["units"]
        sites = list(dict.fromkeys(self.space.table["site"].to_numpy()[cols]))
        warn(
            f"run {run}: {losses['overflow']} values are beyond the {losses['dtype']} range "
            f"(+-{losses['limit']:,.0f}) and are stored as +-inf in {writer.paths.bold}: "
            f"{losses['n_frames']} of {writer.n_frames} frames (first {losses['frames'][:5]}), "
            f"{losses['n_units']} units (columns {cols[:5]}{' ...' if len(cols) > 5 else ''}; "
            f"sites {sites[:3]}{' ...' if len(sites) > 3 else ''}); the largest magnitude "
            f"lost is {losses['max_abs']:.6g}. The GLM will refuse these units. Record in "
            "float32 (dtype='float32') to keep them, or leave them out (units=...).",
            StorageWarning,
        )

    def _run_batch(self, ids, run, prompt_ids, **kwargs):
        from ._generate import run_batch

        return run_batch(self.model, self.tokenizer, self.capture, ids, generation=self.gen,
                         mode=self.mode, device=self.device,
                         seeds=[_prompt_seed(self.seed, run, pid) for pid in prompt_ids],
                         **kwargs)

    def _record_batches(self, rows, encoded, todo, writer, bar, run):
        for b0 in range(0, len(todo), self.batch_size):
            batch = todo[b0:b0 + self.batch_size]
            results = self._run_batch([encoded[i] for i in batch], run,
                                      [rows["prompt_id"][i] for i in batch])
            _commit(writer, self.tokenizer, rows, batch, results)
            bar.update(len(batch))

    def _record_continuous(self, rows, encoded, writer, bar, run):
        context = []
        for i in range(len(rows)):
            prompt = encoded[i] if not context else _strip_bos(self.tokenizer, encoded[i])
            ids = context + prompt
            res = self._run_batch([ids], run, [rows["prompt_id"][i]],
                                  n_prompt_frames=[len(prompt)])
            _commit(writer, self.tokenizer, rows, [i], res)
            context = ids + res[0]["generated_ids"]
            bar.update(1)


def _select_runs(schedule, runs):
    run_labels = sorted(schedule["run"].unique().tolist())
    if runs is None:
        return run_labels
    runs = [runs] if np.ndim(runs) == 0 else list(runs)
    unknown = sorted(set(runs) - set(run_labels))
    if unknown:
        raise ValueError(f"runs={list(runs)} names runs {unknown} that the paradigm does not "
                         f"have; its runs are {run_labels}.")
    return [r for r in run_labels if r in set(runs)]


def _capture_layout(space, site_list):
    """Column range of each site in a frame, and the recorded indices (None: all of them)."""
    import torch

    offsets, indices = {}, {}
    for site in site_list:
        cols = space.select(sites=site)  # contiguous: UnitSpace orders columns site by site
        offsets[site] = (int(cols[0]), int(cols[-1]) + 1)
        idx = space.table["index"].to_numpy()[cols]
        full = len(idx) == space.site_sizes[site] and np.array_equal(idx, np.arange(len(idx)))
        indices[site] = None if full else torch.as_tensor(idx, dtype=torch.long)
    return offsets, indices


def _strip_bos(tokenizer, ids):
    bos = tokenizer.bos_token_id
    return ids[1:] if ids and bos is not None and ids[0] == bos else ids


def _commit(writer, tokenizer, rows, batch, results):
    """Commit one batch: its frames, and their events in the one schema (``make_events``)."""
    from ..paradigm import EVENT_COLUMNS, make_events

    counts = [res["frames"].shape[0] for res in results]
    tokens = {
        "frame_kind": [k for res in results for k in res["kinds"]],
        "position": np.concatenate([res["positions"] for res in results]) if results else [],
        "token": [tokenizer.decode([t]) if t >= 0 else "" for res in results
                  for t in res["token_ids"].tolist()],
        "token_id": np.concatenate([res["token_ids"] for res in results]) if results else [],
        "logprob": np.concatenate([res["logprobs"] for res in results]) if results else [],
        "response": [res["response"] for res, n in zip(results, counts) for _ in range(n)],
    }
    events = make_events(rows.iloc[list(batch)], counts, tokens=tokens,
                         first_onset=writer.n_frames)
    table = events[list(EVENT_COLUMNS)].astype(object)
    table = table.where(pd.notna(table), None)  # NaN log-probs are journalled as null
    frames = [res["frames"] for res in results]
    writer.commit(np.concatenate(frames, axis=0) if frames else np.zeros((0, writer.n_units)),
                  table.values.tolist(), [rows["prompt_id"][i] for i in batch])


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


def _check_dataset(out, identity, subject, overwrite):
    """What is in ``out``: ``"new"``, ``"same"`` or ``"replace"`` (refused unless ``overwrite``).

    Reads only. Two different models (or paradigms) whose BIDS labels coincide
    are two recordings: the second is refused, never written over the first.
    """
    rec_json = out / "recording.json"
    if rec_json.exists():
        old = json.loads(rec_json.read_text())
        if old.get("identity") == dict(identity):
            return "same"
        if not overwrite:
            old_id = old.get("identity", {})
            diff = identity_diff(old_id, dict(identity))
            note = ""
            if old.get("subject") == subject and old_id.get("model_id") != identity["model_id"]:
                note = (f" Both models, {old_id.get('model_id')!r} and {identity['model_id']!r}, "
                        f"have the BIDS label sub-{subject}, but they are different models.")
            raise RecordingConflictError(
                f"{out} already holds a different recording (differs in: {', '.join(diff)})."
                f"{note} Record into another directory, or pass overwrite=True (CLI: "
                "--overwrite) to replace it."
            )
        return "replace"
    if out.exists() and any(p.name not in LOCK_FILES for p in out.iterdir()):
        if not overwrite:
            raise RecordingConflictError(
                f"{out} exists and is not an llmfmri recording; choose an empty or new directory, "
                "or pass overwrite=True to replace its contents."
            )
        return "replace"
    return "new"


def _prepare_dataset(out, paradigm, space, identity, subject, task, overwrite):
    """Write (or check) the dataset-level files: description, units, paradigm, identity."""
    from .._version import __version__

    dataset_id = dict(identity)
    rec_json = out / "recording.json"
    if _check_dataset(out, identity, subject, overwrite) == "replace":
        _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    # the directory is new, was cleared on request, or holds this very recording: the
    # dataset-level files below are (re)written with the same content
    atomic_write_json(out / "dataset_description.json", overwrite=True, obj={
        "Name": f"llmfmri recording: {paradigm.name} on {identity['model_id']}",
        "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "llmfmri", "Version": __version__}],
    })
    space.to_tsv(out / "units.tsv", overwrite=True)
    paradigm.save(out / "paradigm.yaml", overwrite=True)
    atomic_write_json(rec_json, {"identity": dataset_id, "subject": subject, "task": task,
                                 "llmfmri_version": __version__}, overwrite=True)


def _clear(out):
    import shutil

    for child in Path(out).iterdir():
        if child.name in LOCK_FILES:  # held by this very call
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
