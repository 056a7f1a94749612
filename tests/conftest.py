"""Test configuration: offline by construction.

* ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` for every test;
* sockets refuse to connect except in tests marked ``network``;
* the default model comes from the real data home (``$LLMFMRI_DATA`` or
  ``~/llmfmri_data``), where ``make test`` has fetched it once; tests that write
  to a data home get a temporary one.
"""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_REAL_DATA_HOME = os.environ.get("LLMFMRI_DATA") or os.path.expanduser("~/llmfmri_data")


class _NoNetwork(OSError):
    pass


@pytest.fixture(autouse=True)
def _no_sockets(request, monkeypatch):
    if request.node.get_closest_marker("network"):
        yield
        return
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family == getattr(socket, "AF_UNIX", None) or host in ("127.0.0.1", "::1", "localhost"):
            return real_connect(self, address)  # local only (e.g. a notebook kernel)
        raise _NoNetwork(f"test tried to open a network connection to {address!r}; tests are "
                         "offline unless marked @pytest.mark.network")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


@pytest.fixture(autouse=True)
def _tmp_data_home(tmp_path, monkeypatch):
    """Every test gets an empty temporary data home unless it asks for the real one."""
    home = tmp_path / "llmfmri_data"
    monkeypatch.setenv("LLMFMRI_DATA", str(home))
    yield home


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="session")
def real_data_home():
    """The data home holding the cached default model (fetched by ``make test``)."""
    return _REAL_DATA_HOME


@pytest.fixture(scope="session")
def default_model(real_data_home):
    """SmolLM2-135M-Instruct from the real data home (float32, CPU), loaded once per session."""
    from llmfmri.models import default_model_dir, load_model

    if not default_model_dir(real_data_home).exists():
        pytest.fail(
            f"The default model is not cached under {real_data_home}; run `make fetch` "
            "(or `llmfmri fetch`) once before the integration tests."
        )
    return load_model(None, data_home=real_data_home, device="cpu")


@pytest.fixture(scope="session")
def tiny_models():
    """One tiny random model per supported family, built from configs."""
    from llmfmri.models import TINY_FAMILIES, tiny_model

    return {family: tiny_model(family) for family in TINY_FAMILIES}
