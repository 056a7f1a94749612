"""Weight lesions on tiny models: matrices in place, exact restoration, importance, regions."""

from __future__ import annotations

import numpy as np
import pytest

from llmfmri.exceptions import DataError
from llmfmri.lesions._dimensions import (compare_dimensions, dimension_lesion, dimension_profile,
                                         dimension_region, dimension_scan)
from llmfmri.lesions._importance import (ParameterImportance, load_importance,
                                         parameter_importance)
from llmfmri.lesions._regions import WeightRegion, load_region, random_regions
from llmfmri.lesions._weights import (MATRIX_KINDS, WeightLesion, matrix_names, matrix_shapes,
                                      model_matrices, weight_lesion)
from llmfmri.models import TINY_FAMILIES, get_adapter, tiny_model

TEXTS = {"a": ["The cat sat on the mat near the door.", "A dog barked twice at night."],
         "b": ["def f(x):\n    return x + 1", "for i in range(3): print(i)"]}


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model, state):
    import torch

    now = model.state_dict()
    return set(now) == set(state) and all(torch.equal(now[k], v) for k, v in state.items())


def _logits(model):
    import torch

    with torch.no_grad():
        return model(torch.tensor([[5, 6, 7, 8, 9, 10]])).logits.clone()


# ------------------------------------------------------------------------ matrices
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_matrices_are_the_adapters_and_writes_land_in_place(tiny_models, family):
    import torch

    model = tiny_models[family]
    adapter = get_adapter(model)
    mats = model_matrices(model)
    for layer in range(adapter.n_layers):
        for kind, w in adapter.weight_matrices(layer).items():
            assert torch.equal(mats[f"layers.{layer}.{kind}"].read(), w)
    state = _state(model)
    # one entry of a fused / transposed / interleaved matrix: exactly that entry changes
    region = WeightRegion.from_entries(model, {"layers.1.q": [(3, 5)],
                                               "layers.0.mlp_out": [(1, 2)]})
    with weight_lesion(model, region, "scale", factor=-7.0):
        for name, (r, c) in (("layers.1.q", (3, 5)), ("layers.0.mlp_out", (1, 2))):
            layer, kind = int(name.split(".")[1]), name.split(".")[2]
            now = get_adapter(model).weight_matrices(layer)[kind]
            before = mats[name].read(state_param(model, mats[name], state))
            expected = before.clone()
            expected[r, c] *= -7.0
            assert torch.equal(now, expected)
        changed = sum(int((model.state_dict()[k] != v).sum()) for k, v in state.items())
        assert changed == 2
    assert _same(model, state)


def state_param(model, matrix, state):
    """The saved copy of the parameter holding ``matrix``."""
    name = [n for n, p in model.named_parameters() if p is matrix.param][0]
    return state[name]


def test_matrix_names_and_shapes():
    model = tiny_model("llama", d_model=16, n_heads=4, d_mlp=24)
    names = matrix_names(model, layers=1)
    assert names == [f"layers.1.{k}" for k in MATRIX_KINDS]
    shapes = matrix_shapes(model, kinds=["k", "mlp_in"], layers=[0])
    assert shapes == {"layers.0.k": (8, 16), "layers.0.mlp_in": (24, 16)}
    assert "layers.0.mlp_gate" not in matrix_names(tiny_model("gpt2"))
    with pytest.raises(ValueError, match="layers must be whole numbers in 0..1"):
        matrix_names(model, layers=[2])
    with pytest.raises(ValueError, match="Allowed values for kinds"):
        matrix_names(model, kinds="mlp_up")


# ----------------------------------------------------------------- restoration
@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("strategy,kw", [("zero", {}), ("scale", {"factor": 3.0}),
                                         ("noise", {"sigma": 2.0, "random_state": 1})])
def test_bit_identical_after_exit_and_after_an_error(tiny_models, family, strategy, kw):
    import torch

    model = tiny_models[family]
    state, logits = _state(model), _logits(model)
    region = WeightRegion.random(model, 0.1, random_state=0)
    with weight_lesion(model, region, strategy, **kw) as les:
        assert les.n_params == region.n_params
        assert not torch.equal(_logits(model), logits)
        mats = model_matrices(model)
        for name in region.nonempty()[:3]:
            outside = mats[name].read()[torch.from_numpy(~region.masks[name])]
            ref = mats[name].read(state_param(model, mats[name], state))
            assert torch.equal(outside, ref[torch.from_numpy(~region.masks[name])])
    assert _same(model, state) and torch.equal(_logits(model), logits)
    with pytest.raises(KeyError, match="inside"):
        with weight_lesion(model, region, strategy, **kw):
            raise KeyError("inside")
    assert _same(model, state)
    # nested and overlapping lesions restore exactly too
    with weight_lesion(model, region, "scale", factor=0.5):
        with weight_lesion(model, region | WeightRegion.random(model, 0.2, random_state=3)):
            pass
    assert _same(model, state) and torch.equal(_logits(model), logits)


def test_noise_is_seeded_and_scaled_by_the_matrix_sd(tiny_models):
    import torch

    model = tiny_models["llama"]
    region = WeightRegion.from_entries(model, {"layers.0.o": [(r, r) for r in range(32)]})
    mats = model_matrices(model)
    before = mats["layers.0.o"].read().clone()
    diffs = []
    for _ in range(2):
        with weight_lesion(model, region, "noise", sigma=1.0, random_state=7):
            diffs.append(torch.diagonal(mats["layers.0.o"].read() - before).clone())
    assert torch.equal(diffs[0], diffs[1])
    assert 0.3 < float(diffs[0].std() / before.std()) < 3.0


def test_a_failing_lesion_restores_what_it_applied(tiny_models):
    model = tiny_models["gpt2"]
    state = _state(model)
    good = WeightLesion(WeightRegion.random(model, 0.1, random_state=0))
    bad = WeightLesion(WeightRegion({"layers.0.q": np.ones((5, 5), dtype=bool)}, label="bad"))
    with pytest.raises(DataError, match="mask of shape \\(5, 5\\) for 'layers.0.q'"):
        with weight_lesion(model, [good, bad]):
            pass
    assert _same(model, state)


def test_weight_lesion_errors(tiny_models):
    model = tiny_models["llama"]
    region = WeightRegion.random(model, 0.05, random_state=0)
    with pytest.raises(ValueError, match="needs factor"):
        weight_lesion(model, region, "scale")
    with pytest.raises(ValueError, match="factor is used by strategy='scale' only"):
        weight_lesion(model, region, "zero", factor=2.0)
    with pytest.raises(ValueError, match="sigma is used by strategy='noise' only"):
        weight_lesion(model, region, "zero", sigma=2.0)
    with pytest.raises(ValueError, match="Allowed values for strategy"):
        weight_lesion(model, region, "mean")
    with pytest.raises(TypeError, match="region must be a WeightRegion"):
        weight_lesion(model, {"layers.0.q": [1]})
    with pytest.raises(DataError, match="empty list"):
        weight_lesion(model, [])
    with pytest.raises(ValueError, match="cannot be given as well"):
        weight_lesion(model, [WeightLesion(region)], "scale", factor=2.0)
    other = WeightRegion({"layers.7.q": np.ones((32, 32), dtype=bool)}, label="far")
    with pytest.raises(DataError, match="'layers.7.q', which the model does not have"):
        with weight_lesion(model, other):
            pass
    ctx = weight_lesion(model, region)
    with ctx:
        with pytest.raises(RuntimeError, match="already active"):
            ctx.__enter__()


# ------------------------------------------------------------------ importance
def _reference_importance(model, texts, max_length):
    """|theta * grad| of the mean NLL over the windows, by autograd, one window at a time."""
    import torch

    from llmfmri.lesions._importance import text_windows

    wins, n = text_windows(model.tokenizer, texts, max_length=max_length)
    mats = model_matrices(model)
    params = list({id(m.param): m.param for m in mats.values()}.values())
    total = 0
    for w, first in wins:
        ids = torch.tensor([w])
        logp = torch.log_softmax(model(ids).logits[0].double(), -1)
        total = total - logp[torch.arange(first - 1, len(w) - 1), ids[0, first:]].sum()
    grads = torch.autograd.grad(total / n, params)
    g = {id(p): gr for p, gr in zip(params, grads)}
    return {name: (m.read(m.param.data) * m.read(g[id(m.param)])).abs().numpy()
            for name, m in mats.items()}


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
def test_importance_equals_autograd_and_restores_the_model(family):
    import torch

    model = tiny_model(family, dtype="float64")
    model.train()  # the call must put it back
    model.lm_head.weight.requires_grad_(True)
    state = _state(model)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    imp = parameter_importance(model, TEXTS, max_length=12, batch_size=3)
    assert _same(model, state) and model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    for s in TEXTS:
        ref = _reference_importance(model, TEXTS[s], 12)
        for name, r in ref.items():
            np.testing.assert_allclose(imp.scores[s][name], r, rtol=1e-6, atol=1e-6 * r.max())
    assert imp.n_tokens["a"] == sum(len(model.tokenizer(t)["input_ids"]) - 1 for t in TEXTS["a"])
    # the sum over sets is the core score
    np.testing.assert_allclose(imp.total()["layers.0.o"],
                               imp.scores["a"]["layers.0.o"] + imp.scores["b"]["layers.0.o"],
                               rtol=1e-6)
    assert torch.is_grad_enabled()


def test_importance_matches_finite_differences():
    import torch

    # GPT-2 computes in float64 throughout (LLaMA's RMSNorm casts to float32, which would
    # drown the finite differences in rounding)
    model = tiny_model("gpt2", dtype="float64")
    texts = {"x": ["Finite differences check the gradient."]}
    imp = parameter_importance(model, texts, max_length=64)
    m = model_matrices(model)["layers.1.mlp_out"]
    ids = torch.tensor([model.tokenizer(texts["x"][0])["input_ids"]])

    def loss():
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0], -1)
            return float(-logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].mean())

    rng = np.random.default_rng(0)
    for r, c in zip(rng.integers(0, 32, 4), rng.integers(0, 96, 4)):
        w = m.read()  # a view of the parameter: writes go to the model
        theta = float(w[r, c])
        eps = 1e-6
        w[r, c] = theta + eps
        up = loss()
        w[r, c] = theta - eps
        down = loss()
        w[r, c] = theta
        fd = abs(theta * (up - down) / (2 * eps))
        assert imp.scores["x"]["layers.1.mlp_out"][r, c] == pytest.approx(fd, rel=1e-4, abs=1e-12)


def test_importance_budget_windows_and_errors(tiny_models):
    model = tiny_models["gpt2"]
    imp = parameter_importance(model, TEXTS, max_length=8, max_tokens=10, kinds=["mlp_in"],
                               layers=[1])
    assert imp.names == ["layers.1.mlp_in"] and imp.n_tokens == {"a": 10, "b": 10}
    with pytest.raises(ValueError, match="max_length=999 exceeds the model's context limit 256"):
        parameter_importance(model, TEXTS, max_length=999)
    with pytest.raises(ValueError, match="stride must be < max_length"):
        parameter_importance(model, TEXTS, max_length=8, stride=8)
    with pytest.raises(DataError, match="has no token to score"):
        parameter_importance(model, {"empty": ["x"]})
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        parameter_importance(model, TEXTS, batch_size=0)


# --------------------------------------------------------------------- regions
def test_regions_from_importance(tmp_path):
    rng = np.random.default_rng(0)
    shapes = {"layers.0.q": (10, 20), "layers.1.mlp_out": (20, 30)}
    scores = {s: {n: rng.random(sh).astype(np.float32) for n, sh in shapes.items()}
              for s in ("en", "de", "fr")}
    imp = ParameterImportance(scores, {"en": 10, "de": 10, "fr": 10})
    top = imp.region("top", 0.1)
    bottom = imp.region("bottom", 0.1)
    rand = imp.region("random", 0.1, random_state=0)
    for r in (top, bottom, rand):
        assert r.counts()["n_params"].tolist() == [20, 60]
    total = imp.total()["layers.0.q"]
    assert total[top.masks["layers.0.q"]].min() >= total[~top.masks["layers.0.q"]].max()
    assert total[bottom.masks["layers.0.q"]].max() <= total[~bottom.masks["layers.0.q"]].min()
    spec = imp.specific_region("en", 0.1)
    own = imp.region("top", 0.1, sets="en")
    other = imp.region("top", 0.1, sets="de") | imp.region("top", 0.1, sets="fr")
    assert (spec.masks["layers.1.mlp_out"] == (own - other).masks["layers.1.mlp_out"]).all()
    assert (top & bottom).n_params == 0 and (top | bottom).n_params == top.n_params * 2
    assert top.overlap(top)["jaccard"] == 1.0
    assert top.union(bottom, label="both").label == "both"
    assert top.intersection(rand).n_params == (top & rand).n_params
    assert top.profile("kind")["n_params"].tolist() == [20, 60]
    assert len(top.entries()) == top.n_params
    # save / load round trip, refusal without overwrite
    top.save(tmp_path / "core")
    back = load_region(tmp_path / "core.json")
    assert back.label == top.label and back.info["fraction"] == 0.1
    assert all((back.masks[n] == top.masks[n]).all() for n in top.names)
    with pytest.raises(FileExistsError, match="already exists"):
        top.save(tmp_path / "core.safetensors")
    top.save(tmp_path / "core", overwrite=True)
    imp.save(tmp_path / "imp")
    again = load_importance(tmp_path / "imp")
    assert again.sets == imp.sets and (again.scores["de"]["layers.0.q"] ==
                                       scores["de"]["layers.0.q"]).all()
    with pytest.raises(DataError, match="no text set 'es'|Allowed values for text set"):
        imp.region("top", 0.1, sets="es")
    with pytest.raises(DataError, match="needs other text sets"):
        ParameterImportance({"en": scores["en"]}, {"en": 1}).specific_region("en")
    with pytest.raises(ValueError, match="fraction must be a number in \\(0, 1\\]"):
        imp.region("top", 0.0)


def test_region_files_and_checks(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_region(tmp_path / "nothing")
    (tmp_path / "x.json").write_text('{"format": "other"}')
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(DataError, match="is not a weight region"):
        load_region(tmp_path / "x")
    with pytest.raises(TypeError, match="must be boolean"):
        WeightRegion({"layers.0.q": np.ones((2, 2))})
    with pytest.raises(ValueError, match="named 'layers.<i>.<kind>'"):
        WeightRegion({"layers.0.query": np.ones((2, 2), dtype=bool)})
    a = WeightRegion({"layers.0.q": np.ones((2, 2), dtype=bool)})
    b = WeightRegion({"layers.0.q": np.ones((3, 2), dtype=bool)})
    with pytest.raises(DataError, match="disagree on the shape"):
        a | b
    model = tiny_model("gpt2")
    with pytest.raises(DataError, match="outside 'layers.0.o'"):
        WeightRegion.from_entries(model, {"layers.0.o": [(99, 0)]})
    with pytest.raises(DataError, match="selects no weight"):
        WeightRegion.from_entries(model, {"layers.0.o": []})


def test_random_regions_have_the_stated_per_matrix_counts(tiny_models):
    model = tiny_models["llama"]
    imp = parameter_importance(model, TEXTS, max_length=16)
    core = imp.region("top", 0.03)
    controls = random_regions(core, 4, random_state=0)
    counts = core.counts()["n_params"].tolist()
    for c in controls:
        assert c.counts()["n_params"].tolist() == counts
        assert (c & core).n_params == 0 and c.rule == "random"
    assert controls[0].label == "random-0(top3%)"
    assert (controls[0] & controls[1]).n_params < core.n_params
    same = random_regions(core, 2, random_state=0)
    assert all((same[0].masks[n] == controls[0].masks[n]).all() for n in core.names)
    full = WeightRegion({"layers.0.q": np.ones((4, 4), dtype=bool)})
    with pytest.raises(DataError, match="only 0 others to draw a control from"):
        random_regions(full, 1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        random_regions(core, 0)


# ------------------------------------------------------------------- dimensions
def test_dimension_regions_read_and_write_slices(tiny_models):
    import torch

    model = tiny_models["llama"]
    r = dimension_region(model, 1, [4, 9])
    c = r.counts().set_index("kind")["n_params"]
    assert c["q"] == 2 * 32 and c["k"] == 2 * 16 and c["mlp_in"] == 2 * 96
    assert c["o"] == 2 * 32 and c["mlp_out"] == 2 * 96
    assert r.masks["layers.1.q"][:, 4].all() and r.masks["layers.1.o"][9, :].all()
    read = dimension_region(model, 0, 3, side="read")
    assert "layers.0.o" not in read.masks
    mlp = dimension_region(model, 0, 50, space="mlp")
    assert mlp.masks["layers.0.mlp_in"][50].all() and mlp.masks["layers.0.mlp_out"][:, 50].all()
    state = _state(model)
    mats = model_matrices(model)
    before = mats["layers.1.o"].read().clone()
    with dimension_lesion(model, 1, 9, factor=4.0):
        now = mats["layers.1.o"].read()
        assert torch.equal(now[9], before[9] * 4) and torch.equal(now[8], before[8])
    assert _same(model, state)
    with pytest.raises(DataError, match="outside layer 1's residual space of width 32"):
        dimension_region(model, 1, 32)
    with pytest.raises(ValueError, match="Allowed values for side"):
        dimension_region(model, 1, 3, side="up")
    with pytest.raises(TypeError, match="dim must be a whole number"):
        dimension_region(model, 1, 2.5)


def test_dimension_profile_scan_and_controls(tiny_models):
    model = tiny_models["gpt2"]
    region = dimension_region(model, 0, 7) | WeightRegion.from_entries(model, {
        "layers.0.q": [(0, 3)]})
    prof = dimension_profile(region, layers=[0])
    assert prof.iloc[0]["dim"] == 7 and prof.iloc[0]["fraction"] == 1.0
    state = _state(model)
    scan = dimension_scan(model, TEXTS, layer=1, dims=[0, 1, 2, 3], factor=50.0)
    assert _same(model, state)
    s = scan.summary()
    assert sorted(s["dim"]) == [0, 1, 2, 3] and s["rank"].tolist() == [1, 2, 3, 4]
    assert (s["delta_nll"].diff().dropna() <= 0).all()
    assert scan.critical(2) == s["dim"].head(2).tolist()
    cmp = compare_dimensions(model, TEXTS, layer=1, dims=scan.critical(1), n_controls=5,
                             factor=50.0)
    assert cmp["n_controls"].tolist() == [5] and len(cmp.attrs["controls"]) == 5
    assert 1 / 6 <= cmp["p_empirical"].iloc[0] <= 1
    # the controls are random_dimensions' draw, as for `llmfmri lesion --dimension` and sweeps
    from llmfmri.lesions import random_dimensions

    crit = [int(d) for d in scan.critical(1)]
    drawn = random_dimensions(model, 1, 5, exclude=crit, random_state=0)
    assert sorted(cmp.attrs["controls"]["dim"]) == drawn and not set(drawn) & set(crit)
    assert random_dimensions(model, 1, 5, exclude=crit, random_state=0) == drawn
    assert _same(model, state)
    with pytest.raises(DataError, match="only 31 dimensions outside"):
        compare_dimensions(model, TEXTS, layer=1, dims=[0], n_controls=40)
    with pytest.raises(DataError, match="only 31 dimensions outside"):
        random_dimensions(model, 1, 32, exclude=[0])


def test_region_files_are_packed_bits_and_version_1_still_reads(tmp_path):
    import json

    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(0)
    masks = {"layers.0.q": rng.random((13, 7)) < 0.2, "layers.1.mlp_in": rng.random((5, 3)) < 0.5}
    region = WeightRegion(masks, label="r")
    region.save(tmp_path / "r")
    stored = load_file(str(tmp_path / "r.safetensors"))
    assert stored["layers.0.q"].dtype == np.uint8 and stored["layers.0.q"].size == (91 + 7) // 8
    back = load_region(tmp_path / "r")
    assert all(np.array_equal(back.masks[n], masks[n]) for n in masks)
    # a version-1 file (one bool per weight) is read as before
    meta = json.loads((tmp_path / "r.json").read_text())
    meta.pop("encoding")
    meta["version"] = 1
    (tmp_path / "v1.json").write_text(json.dumps(meta))
    save_file({n: m for n, m in masks.items()}, str(tmp_path / "v1.safetensors"))
    old = load_region(tmp_path / "v1")
    assert all(np.array_equal(old.masks[n], masks[n]) for n in masks)
    # packed masks that do not fit the JSON's shapes are refused
    save_file({"layers.0.q": stored["layers.0.q"][:3], "layers.1.mlp_in": stored["layers.1.mlp_in"]},
              str(tmp_path / "r.safetensors"))
    with pytest.raises(DataError, match="do not belong together"):
        load_region(tmp_path / "r")
