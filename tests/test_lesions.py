"""Lesions on tiny models: restoration, every generated step, chosen coordinates only, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from _testing import make_paradigm
from llmfmri.exceptions import DataError, SiteError
from llmfmri.lesions import Lesion, lesion
from llmfmri.models import TINY_FAMILIES, tiny_model
from llmfmri.networks import Network
from llmfmri.recording import record
from llmfmri.units import UnitSpace

#: one unit set touching every kind of site (embed, block output, attention, MLP, MLP neurons)
UNITS = {"embed": [7], "layers.0.resid_post": [1, 2, 3], "layers.0.attn_out": [2],
         "layers.1.mlp_act": [0, 4], "layers.1.mlp_out": [3]}


def _cols(rec, units):
    tab = rec.units.table
    return {s: tab[(tab["site"] == s) & tab["index"].isin(idx)]["column"].to_numpy()
            for s, idx in units.items()}


def _snapshot(model):
    import torch

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hooks = {name: (len(m._forward_hooks), len(m._forward_pre_hooks))
             for name, m in model.named_modules()}
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    with torch.no_grad():
        logits = model(ids).logits.clone()
    return state, hooks, logits


def _assert_same(model, snap):
    import torch

    state, hooks, logits = snap
    now = model.state_dict()
    assert set(now) == set(state)
    for k, v in state.items():
        assert torch.equal(now[k], v), k  # bit-identical parameters and buffers
    assert {name: (len(m._forward_hooks), len(m._forward_pre_hooks))
            for name, m in model.named_modules()} == hooks
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, logits)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_model_is_bit_identical_after_the_block_and_after_an_error(tiny_models, family):
    import torch

    model = tiny_models[family]
    snap = _snapshot(model)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    for strategy, kw in [("zero", {}), ("scale", {"factor": 3.0})]:
        with lesion(model, UNITS, strategy=strategy, **kw):
            with torch.no_grad():
                changed = model(ids).logits
        assert not torch.equal(changed, snap[2])  # the lesion did something
        _assert_same(model, snap)
    with pytest.raises(RuntimeError, match="inside"):
        with lesion(model, UNITS):
            raise RuntimeError("an error inside the block")
    _assert_same(model, snap)
    # an error while entering (a later lesion of the list is bad) leaves no hook behind
    bad = Lesion({"layers.1.resid_post": [1]}, "mean", reference=object())
    with pytest.raises(TypeError, match="reference must be a Recording"):
        with lesion(model, [Lesion(UNITS), bad]):
            pass
    _assert_same(model, snap)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_zeroed_units_read_zero_at_every_position_and_generated_step(tiny_models, family,
                                                                     tmp_path):
    model = tiny_models[family]
    par = make_paradigm(frames="both", max_new_tokens=6, n_runs=1)
    base = record(model, par, sites="all", out=tmp_path / "base", progress=False)
    with lesion(model, UNITS):
        rec = record(model, par, sites="all", out=tmp_path / "les", progress=False)
    ev = rec.events(1)
    assert (ev["frame_kind"] == "generated").sum() > len(ev["prompt_id"].unique())  # several
    data = rec.data(1)
    for site, cols in _cols(rec, UNITS).items():
        assert np.all(data[:, cols] == 0), site  # every prompt position and generated step
    # only the chosen coordinates of the first lesioned site differ (nothing upstream of it) on
    # the prompt tokens (the generated tokens may differ)
    other = np.setdiff1d(rec.select(sites="embed"), _cols(rec, UNITS)["embed"])
    prompt = (ev["frame_kind"] == "prompt").to_numpy()
    base_prompt = (base.events(1)["frame_kind"] == "prompt").to_numpy()
    np.testing.assert_array_equal(data[prompt][:, other], base.data(1)[base_prompt][:, other])
    # and the lesion changes what follows
    later = rec.select(sites="layers.1.resid_post")
    assert not np.allclose(data[prompt][:, later], base.data(1)[base_prompt][:, later])


def test_strategies_write_what_they_say(tiny_models, tmp_path):
    model = tiny_models["llama"]
    par = make_paradigm(frames="prompt", max_new_tokens=0, n_runs=1)
    units = {"embed": [1, 4, 9]}
    ref = record(model, par, sites="embed", out=tmp_path / "ref", progress=False)
    cols = _cols(ref, units)["embed"]
    base = ref.data(1)
    # scale: exactly factor x the intact value (nothing upstream of embed changes)
    with lesion(model, units, strategy="scale", factor=-2.5):
        scaled = record(model, par, sites="embed", out=tmp_path / "scale", progress=False)
    np.testing.assert_array_equal(scaled.data(1)[:, cols],
                                  (base[:, cols] * np.float32(-2.5)).astype(np.float32))
    # mean: each unit's mean over the reference frames
    with lesion(model, units, strategy="mean", reference=ref):
        mean = record(model, par, sites="embed", out=tmp_path / "mean", progress=False)
    np.testing.assert_allclose(mean.data(1)[:, cols], np.broadcast_to(
        base[:, cols].astype(np.float64).mean(axis=0), (len(base), cols.size)), rtol=1e-6)
    # mean over one condition's frames only
    ev = ref.events(1)
    with lesion(model, units, strategy="mean", reference=ref, condition="science"):
        cond = record(model, par, sites="embed", out=tmp_path / "cond", progress=False)
    sci = base[(ev["trial_type"] == "science").to_numpy()][:, cols].mean(axis=0)
    np.testing.assert_allclose(cond.data(1)[0, cols], sci, rtol=1e-6)
    # noise: seeded, reproducible, spread sigma x the reference SD
    runs = []
    for seed, name in [(0, "n0"), (0, "n0b"), (1, "n1")]:
        with lesion(model, units, strategy="noise", reference=ref, sigma=2.0, random_state=seed):
            runs.append(record(model, par, sites="embed", out=tmp_path / name,
                               progress=False).data(1))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0][:, cols], runs[2][:, cols])
    np.testing.assert_array_equal(np.delete(runs[0], cols, axis=1), np.delete(base, cols, axis=1))
    ratio = (runs[0][:, cols] - base[:, cols]).std(axis=0) / base[:, cols].std(axis=0, ddof=1)
    assert np.all((ratio > 1.2) & (ratio < 2.8))  # about 2 with ~150 frames
    # resample: every frame's lesioned values are one frame of the reference condition
    with lesion(model, units, strategy="resample", reference=ref, condition="control",
                random_state=0):
        res = record(model, par, sites="embed", out=tmp_path / "res", progress=False)
    bank = base[(ev["trial_type"] == "control").to_numpy()][:, cols]
    got = res.data(1)[:, cols]
    assert all((bank == row).all(axis=1).any() for row in got)
    assert len({tuple(r) for r in got}) > 5  # drawn, not one frame repeated


def test_lesions_compose_nested_or_as_a_list(tiny_models, tmp_path):
    import torch

    model = tiny_models["gpt2"]
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    a = {"layers.0.resid_post": [1, 2]}
    b = {"layers.1.resid_post": [3], "layers.0.resid_post": [2, 5]}
    with torch.no_grad():
        with lesion(model, a):
            with lesion(model, b, strategy="scale", factor=0.5):
                nested = model(ids).logits
        with lesion(model, [Lesion(a), Lesion(b, "scale", factor=0.5)]) as les:
            listed = model(ids).logits
            assert les.n_units == 5
        with lesion(model, [Lesion(b, "scale", factor=0.5), Lesion(a)]):
            other_order = model(ids).logits
        with lesion(model, {"layers.0.resid_post": [1, 2, 5], "layers.1.resid_post": [3]}):
            all_zero = model(ids).logits
    assert torch.equal(nested, listed)
    # zeroing unit 2 after or before halving it gives 0 either way; unit 5 is halved only
    assert not torch.equal(listed, all_zero)
    assert torch.equal(other_order, listed)


def test_units_from_a_network_a_table_or_pairs(tiny_models, tmp_path):
    import torch

    model = tiny_models["opt"]
    space = UnitSpace({"layers.0.resid_post": 32, "layers.1.resid_post": 32})
    mask = np.zeros(64, dtype=bool)
    mask[[3, 40]] = True
    net = Network(mask, space, label="net")
    ids = torch.tensor([[5, 6, 7, 8]])
    outs = []
    with torch.no_grad():
        for units in (net, net.to_frame(), [("layers.0.resid_post", 3),
                                            ("layers.1.resid_post", 8)],
                      {"layers.1.resid_post": [8], "layers.0.resid_post": np.array([3])}):
            with lesion(model, units) as les:
                assert les.n_units == 2
                outs.append(model(ids).logits)
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_bad_input_gets_a_clear_error(tiny_models, tmp_path):
    llama, gpt2 = tiny_models["llama"], tiny_models["gpt2"]
    # units chosen on another model: wider sites, or layers this model does not have
    wide = UnitSpace({"layers.0.resid_post": 576, "layers.29.resid_post": 576})
    net = Network(np.r_[np.ones(3), np.zeros(1149)].astype(bool), wide, label="smol")
    with pytest.raises(DataError, match="units come from another model"):
        with lesion(llama, net):
            pass
    late = Network(np.r_[np.zeros(600), np.ones(3), np.zeros(549)].astype(bool), wide)
    with pytest.raises(SiteError, match="another model"):
        with lesion(llama, late):
            pass
    with pytest.raises(DataError, match="another model"):
        with lesion(llama, {"layers.0.resid_post": [31, 32]}):
            pass
    # an empty network, empty units
    with pytest.raises(DataError, match="is empty"):
        lesion(llama, Network(np.zeros(1152, dtype=bool), wide, label="empty"))
    with pytest.raises(DataError, match="nothing to lesion"):
        lesion(llama, [])
    with pytest.raises(DataError, match="no UnitSpace"):
        lesion(llama, Network([1, 0, 1], label="bare"))
    # strategies that need a reference recording, and other parameters
    for strategy in ("mean", "noise", "resample"):
        with pytest.raises(ValueError, match=f"strategy='{strategy}' needs a reference"):
            lesion(llama, UNITS, strategy=strategy)
    with pytest.raises(ValueError, match="Allowed values for strategy.*Did you mean 'zero'"):
        lesion(llama, UNITS, strategy="zeros")
    with pytest.raises(ValueError, match="needs factor"):
        lesion(llama, UNITS, strategy="scale")
    with pytest.raises(ValueError, match="factor is used by strategy='scale' only"):
        lesion(llama, UNITS, factor=2.0)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        lesion(llama, UNITS, strategy="noise", reference=object(), sigma=0)
    with pytest.raises(TypeError, match=r"\(site, index\) pairs"):
        lesion(llama, [("layers.0.resid_post",)])
    with pytest.raises(TypeError, match="whole numbers"):
        lesion(llama, [("layers.0.resid_post", 1.5)])
    with pytest.raises(SiteError, match="grammar"):
        lesion(llama, {"layer.0.resid_post": [1]})
    with pytest.raises(ValueError, match="each with its own strategy"):
        lesion(llama, [Lesion(UNITS)], strategy="scale", factor=2.0)
    # a reference recorded on another model, or without the lesioned units
    par = make_paradigm(frames="prompt", max_new_tokens=0, n_runs=1)
    ref = record(gpt2, par, sites="embed", out=tmp_path / "gpt2", progress=False)
    with pytest.raises(DataError, match="made on model 'tiny-gpt2'.*another model"):
        with lesion(llama, {"embed": [1]}, strategy="mean", reference=ref):
            pass
    ref_llama = record(llama, par, sites="embed", out=tmp_path / "llama", progress=False)
    with pytest.raises(DataError, match="does not hold 1 of the 1 units"):
        with lesion(llama, {"layers.0.resid_post": [1]}, strategy="mean", reference=ref_llama):
            pass
    with pytest.raises(DataError, match="condition 'sciense' has no frames.*Did you mean"):
        with lesion(llama, {"embed": [1]}, strategy="mean", reference=ref_llama,
                    condition="sciense"):
            pass
    with pytest.raises(ValueError, match="reads no reference"):
        lesion(llama, UNITS, reference=ref_llama)


def test_import_is_light():
    code = ("import sys, llmfmri.lesions; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False False"


def test_bfloat16_model(tmp_path):
    model = tiny_model("llama", dtype="bfloat16")
    par = make_paradigm(max_new_tokens=3, n_runs=1)
    with lesion(model, {"layers.0.resid_post": [2, 3]}):
        rec = record(model, par, sites="resid_post", out=tmp_path / "bf", progress=False)
    cols = _cols(rec, {"layers.0.resid_post": [2, 3]})["layers.0.resid_post"]
    assert np.all(rec.data(1)[:, cols] == 0)


def test_default_model_lesion_and_restore(default_model):
    """The default model (SmolLM2, llama family): zeroed downstream, then restored exactly."""
    import torch

    from llmfmri.recording import intervene

    model = default_model
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    ids = model.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    seen = []
    with torch.no_grad():
        before = model(ids).logits
        with lesion(model, {"layers.5.resid_post": [0, 100, 575]}):
            # an observer added inside the block (as record's capture) sees the lesioned output
            with intervene(model, {"layers.5.resid_post": lambda h: seen.append(h.clone())}):
                lesioned = model(ids).logits
        after = model(ids).logits
    assert (seen[0][..., [0, 100, 575]] == 0).all() and (seen[0][..., 1] != 0).all()
    assert not torch.equal(lesioned, before)
    assert torch.equal(after, before)
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()] == hooks
