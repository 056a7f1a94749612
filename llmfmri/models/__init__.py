"""Models: loading (the default model offline, any HF causal LM) and architecture adapters."""

from ._adapters import (FAMILIES, ArchitectureAdapter, UnknownArchitectureError, get_adapter,
                        list_sites)
from ._default import (DEFAULT_MODEL, ModelLoadError, default_model_dir, fetch_default_model,
                       verify_default_model)
from ._loading import load_model, resolve_device
from ._tiny import TINY_FAMILIES, tiny_model, tiny_tokenizer

__all__ = [
    "load_model", "get_adapter", "list_sites", "ArchitectureAdapter", "FAMILIES",
    "UnknownArchitectureError", "DEFAULT_MODEL", "ModelLoadError", "default_model_dir",
    "fetch_default_model", "verify_default_model", "resolve_device", "tiny_model",
    "tiny_tokenizer", "TINY_FAMILIES",
]
