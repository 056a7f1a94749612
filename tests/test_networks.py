"""llmfmri.networks: task maps over prompts, thresholds, networks, overlap, repeatability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import llmfmri.networks as nw
from llmfmri.exceptions import DataError, OutputNameError
from llmfmri.glm import UnitMap
from llmfmri.units import UnitSpace

from _testing import CONTRASTS, PLANTED, SyntheticRecording


# --------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def planted():
    return SyntheticRecording(0, effects=PLANTED, amplitude=1.5)


@pytest.fixture(scope="module")
def planted_maps(planted):
    return nw.task_maps(planted, CONTRASTS)


def space8():
    return UnitSpace({"layers.0.resid_post": 4, "layers.1.resid_post": 4})


# ---------------------------------------------------------------------- task maps
def test_prompt_level_map_recovers_planted_units(planted_maps):
    tm = planted_maps["a"]
    assert tm.inference == "prompt" and tm.generalizes_over_prompts
    assert tm.n_samples == 4 * 7 * 4     # runs x blocks x prompts
    assert tm.dof == tm.n_samples - 4    # one column per condition
    net = nw.threshold(tm, alpha=0.05, correction="fdr")
    assert set(PLANTED["a"]) <= set(net.columns)
    assert len(set(net.columns) - set(PLANTED["a"])) <= 2
    assert net.inference == "prompt" and net.contrast == "a - control"


@pytest.mark.parametrize("inference", ["prompt", "permutation", "token"])
def test_task_map_records_its_inference(planted, inference):
    tm = nw.task_map(planted, "a - control", inference=inference, n_permutations=50,
                     random_state=0)
    assert tm.inference == inference == tm.z.inference
    assert tm.description.startswith({"prompt": "prompt-level", "permutation": "permutation",
                                      "token": "token-level"}[inference])
    assert (tm.p_fwer is not None) == (inference == "permutation")
    assert tm.to_frame().shape[0] == planted.units.n_units
    if inference == "permutation":
        assert tm.p_fwer.correction == "maxt" and tm.n_permutations == 50
        with pytest.raises(DataError, match="family-wise p values only"):
            tm.p_values()
    else:
        p = tm.p_values("two-sided").values
        np.testing.assert_allclose(p, 2 * stats.norm.sf(np.abs(tm.z.values)))
    net = nw.threshold(tm, correction="maxt" if inference == "permutation" else "fdr")
    if inference == "permutation":
        # max-T over units whose token t is inflated by prompt offsets: conservative
        assert set(net.columns) <= set(PLANTED["a"]) and net.n_units >= 8
    else:
        assert set(PLANTED["a"]) <= set(net.columns)


def test_task_map_equals_second_level_prompt_fit(planted):
    from llmfmri.glm import SecondLevelGLM

    tm = nw.task_map(planted, "b - control")
    ref = SecondLevelGLM().fit_prompts(planted).compute_contrast("b - control")
    np.testing.assert_allclose(tm.z.values, ref.values)


def test_task_map_option_errors(planted):
    with pytest.raises(ValueError, match="Allowed values for inference .* Did you mean 'token'"):
        nw.task_map(planted, "a - control", inference="tokens")
    with pytest.raises(ValueError, match="'drift_modle' is not an option of FirstLevelGLM"
                                         ".*Did you mean 'drift_model'"):
        nw.task_map(planted, "a - control", inference="token", drift_modle=None)
    with pytest.raises(ValueError, match="'drift_model' is not an option of "
                                         "SecondLevelGLM.fit_prompts"):
        nw.task_map(planted, "a - control", drift_model=None)
    with pytest.raises(DataError, match="contrasts is empty"):
        nw.task_maps(planted, {})


def test_prompt_inference_is_calibrated_where_token_level_is_not():
    """The calibration in miniature: no task effect, a random offset per prompt.

    Token-level AR(1) + FDR declares a "network" in most seeds; prompt-level + FDR and
    permutation max-T (exchanging prompts) in almost none.
    """
    found = {"prompt": 0, "token": 0, "permutation": 0}
    seeds = range(6)
    for seed in seeds:
        rec = SyntheticRecording(seed, n_runs=2, frames_per_prompt=12, prompt_sd=1.0)
        for inference in found:
            tm = nw.task_map(rec, "a - control", inference=inference, n_permutations=200,
                             random_state=seed)
            net = nw.threshold(tm, correction="maxt" if inference == "permutation" else "fdr")
            found[inference] += net.n_units > 0
    assert found["token"] >= 5
    assert found["prompt"] <= 1
    assert found["permutation"] <= 1


# ----------------------------------------------------------------------- threshold
def test_threshold_matches_statsmodels_fdr_and_bonferroni():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(1)
    z = np.r_[rng.normal(3.5, 1, 20), rng.normal(0, 1, 180)]
    zmap = UnitMap(z, output_type="z_score", contrast="x")
    p = stats.norm.sf(z)
    for correction, method in (("fdr", "fdr_bh"), ("bonferroni", "bonferroni")):
        net = nw.threshold(zmap, alpha=0.05, correction=correction)
        np.testing.assert_array_equal(net.mask, multipletests(p, 0.05, method)[0])
    p2 = 2 * stats.norm.sf(np.abs(z))
    net = nw.threshold(zmap, correction="fdr", tail="two-sided")
    np.testing.assert_array_equal(net.mask, multipletests(p2, 0.05, "fdr_bh")[0])
    neg = nw.threshold(UnitMap(-z, output_type="z_score"), tail="negative")
    np.testing.assert_array_equal(neg.mask, nw.threshold(zmap).mask)
    unc = nw.threshold(zmap, correction=None, alpha=0.01)
    np.testing.assert_array_equal(unc.mask, p <= 0.01)


def test_threshold_t_map_and_height():
    t = UnitMap([4.0, -4.0, 1.0, 2.5], output_type="stat", stat_type="t", dof=20)
    assert nw.threshold(t, correction=None, height=2.0).columns.tolist() == [0, 3]
    assert nw.threshold(t, correction=None, height=2.0, tail="negative").columns.tolist() == [1]
    assert nw.threshold(t, correction=None, height=2.0,
                        tail="two-sided").columns.tolist() == [0, 1, 3]
    p = stats.t.sf([4.0, -4.0, 1.0, 2.5], 20)
    np.testing.assert_array_equal(nw.threshold(t, correction=None).mask, p <= 0.05)
    net = nw.threshold(t, correction=None, height=2.0)
    assert net.rule == "height" and net.desc == "height2"


def test_threshold_errors(planted):
    z = UnitMap([1.0, 2.0], output_type="z_score")
    with pytest.raises(ValueError, match="height=3.1 is a cut on the statistic, used only with "
                                         "correction=None"):
        nw.threshold(z, height=3.1)
    with pytest.raises(ValueError, match="height must be a finite number >= 0"):
        nw.threshold(z, correction=None, height=-1)
    with pytest.raises(ValueError, match="correction='maxt' needs family-wise p values"):
        nw.threshold(z, correction="maxt")
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\), but got 1.5"):
        nw.threshold(z, alpha=1.5)
    with pytest.raises(ValueError, match="Allowed values for tail .* Did you mean 'two-sided'"):
        nw.threshold(z, tail="two_sided")
    with pytest.raises(ValueError, match="Allowed values for correction .* Did you mean 'fdr'"):
        nw.threshold(z, correction="fdr_bhh")
    with pytest.raises(DataError, match="must hold z scores or t statistics"):
        nw.threshold(UnitMap([0.1, 0.2], output_type="p_value"))
    with pytest.raises(TypeError, match="must be a TaskMap .* but got ndarray"):
        nw.threshold(np.zeros(3))
    perm = nw.task_map(planted, "a - control", inference="permutation", n_permutations=20,
                       random_state=0)
    with pytest.raises(ValueError, match="already family-wise corrected; use "
                                         "correction='maxt' instead of 'fdr'"):
        nw.threshold(perm)
    with pytest.raises(DataError, match="needs a two-sided max-T test"):
        nw.threshold(perm, correction="maxt", tail="negative")


def test_threshold_permutation_result_directly(planted):
    from llmfmri.glm import FirstLevelGLM

    glm = FirstLevelGLM(noise_model="ols").fit(planted)
    res = glm.permutation_test("c - control", by="prompt_id", n_permutations=100, random_state=0)
    net = nw.threshold(res, correction="maxt", tail="two-sided")
    assert set(net.columns) <= set(PLANTED["c"]) and net.n_units >= 8
    assert net.inference == "permutation" and net.desc == "maxt0p05Abs"


# ---------------------------------------------------------------------------- top_k
def test_top_k_per_layer_counts(planted_maps):
    net = nw.top_k(planted_maps["a"], fraction=0.25, per_layer=True)
    profile = net.layer_profile()
    assert profile["n_units"].tolist() == [8, 8, 8, 8]
    assert profile["fraction"].tolist() == [0.25] * 4
    assert net.desc == "top25pctPerLayer"
    glob = nw.top_k(planted_maps["a"], k=16)
    assert len(set(glob.columns) & set(PLANTED["a"])) >= 14
    assert nw.top_k(planted_maps["a"]).n_units == round(0.01 * 128)
    k2 = nw.top_k(planted_maps["a"], k=2, per_layer=True)
    assert k2.layer_profile()["n_units"].tolist() == [2, 2, 2, 2]
    neg = nw.top_k(UnitMap(-planted_maps["a"].z.values, planted_maps["a"].units), k=16,
                   tail="negative")
    np.testing.assert_array_equal(neg.mask, glob.mask)


def test_top_k_errors():
    m = UnitMap(np.arange(8.0), space8(), output_type="z_score")
    with pytest.raises(ValueError, match="Give fraction or k, not both"):
        nw.top_k(m, fraction=0.1, k=2)
    with pytest.raises(DataError, match="k=5 exceeds the 4 units of site 'layers.0.resid_post'"):
        nw.top_k(m, k=5, per_layer=True)
    with pytest.raises(DataError, match="per_layer=True needs the map's UnitSpace"):
        nw.top_k(UnitMap(np.arange(8.0)), k=1, per_layer=True)
    with pytest.raises(ValueError, match="fraction must be a number in"):
        nw.top_k(m, fraction=0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        nw.top_k(m, k=0)


# ------------------------------------------------------------------------- Network
def test_network_set_operations_and_checks():
    space = space8()
    a = nw.Network([1, 1, 0, 0, 1, 0, 0, 0], space, label="a")
    b = nw.Network([0, 1, 1, 0, 1, 1, 0, 0], space, label="b")
    assert (a & b).columns.tolist() == [1, 4]
    assert (a | b).columns.tolist() == [0, 1, 2, 4, 5]
    assert (a - b).columns.tolist() == [0]
    assert (a & b).label == "(a & b)" and (a & b).rule == "set"
    other = nw.Network([1, 0, 0, 0, 0, 0, 0, 0], UnitSpace({"layers.0.resid_post": 8}))
    with pytest.raises(DataError, match="networks are over different units"):
        a & other
    with pytest.raises(TypeError, match="Networks combine with networks only"):
        a | np.ones(8, bool)
    with pytest.raises(ValueError, match="read-only"):
        a.mask[0] = False
    with pytest.raises(DataError, match="mask has 3 entries but units has 8"):
        nw.Network([1, 0, 1], space)
    with pytest.raises(DataError, match="mask must hold booleans"):
        nw.Network([0, 2, 1])


def test_network_tables_and_maps(planted_maps):
    net = nw.threshold(planted_maps["c"], label="c")
    frame = net.to_frame()
    assert list(frame.columns) == ["column", "site", "layer", "component", "index", "stat"]
    assert len(frame) == net.n_units and (frame["stat"] > 0).all()
    profile = net.layer_profile()
    assert profile["n_units"].sum() == net.n_units
    assert profile["n_total"].tolist() == [32] * 4
    np.testing.assert_allclose(profile["share"].sum(), 1.0)
    um = net.to_unit_map()
    assert um.output_type == "z_score" and (um.values[~net.mask] == 0).all()
    np.testing.assert_array_equal(um.values[net.mask], planted_maps["c"].z.values[net.mask])
    plain = nw.Network(net.mask, net.units, label="x").to_unit_map()
    np.testing.assert_array_equal(plain.values, net.mask.astype(float))
    img = net.to_nifti()
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(net.units.from_volume(np.asarray(img.dataobj)).astype(bool),
                                  net.mask)
    assert "c:" in net.describe() and "prompt-level" in net.describe()
    with pytest.raises(DataError, match="layer_profile needs the network's UnitSpace"):
        nw.Network([1, 0]).layer_profile()


def test_save_writes_and_refuses_overwrite(tmp_path, planted_maps):
    net = nw.threshold(planted_maps["a"], label="a - control")
    paths = net.save(tmp_path, task="toy")
    names = sorted(p.name for p in paths)
    assert names == ["task-toy_contrast-aMinusControl_desc-fdr0p05_mask.nii.gz",
                     "task-toy_contrast-aMinusControl_desc-fdr0p05_units.tsv"]
    from llmfmri.io import read_tsv

    units = read_tsv(tmp_path / names[1])
    assert units["column"].tolist() == net.columns.tolist()
    with pytest.raises(FileExistsError, match="already exists.*overwrite=True"):
        net.save(tmp_path, task="toy")
    assert len(net.save(tmp_path, task="toy", overwrite=True)) == 2


def test_save_networks_table_and_label_collisions(tmp_path, planted_maps):
    nets = {t: nw.threshold(m, label=t) for t, m in planted_maps.items()}
    written = nw.save_networks(nets, tmp_path)
    assert len(written) == 7
    from llmfmri.io import read_tsv

    table = read_tsv(tmp_path / "networks.tsv")
    assert table["label"].tolist() == ["a", "b", "c"]
    assert table["inference"].tolist() == ["prompt"] * 3
    # read back from the unit table and from the mask: the same units, label and threshold
    space = nets["a"].units
    for name in ("units", "mask"):
        back = nw.load_network(tmp_path / table.loc[0, name], space)
        assert np.array_equal(back.mask, nets["a"].mask) and back.label == "a"
        assert back.inference == "prompt" and back.alpha == nets["a"].alpha
    with pytest.raises(FileNotFoundError, match="needs the units it was chosen from"):
        nw.load_network(tmp_path / table.loc[0, "units"])        # no units.tsv near it
    space.to_tsv(tmp_path / "units.tsv")
    assert nw.load_network(tmp_path / table.loc[0, "units"]).n_units == nets["a"].n_units
    other = type(space)({"layers.9.resid_post": 3})
    with pytest.raises(DataError, match="not in the unit space"):
        nw.load_network(tmp_path / table.loc[0, "units"], other)
    clash = {"a_b": nets["a"], "aB": nets["b"]}
    with pytest.raises(OutputNameError, match="would both be written as"):
        nw.save_networks(clash, tmp_path / "other")
    assert not (tmp_path / "other").exists()


# -------------------------------------------------------------------------- overlap
def test_overlap_metrics_match_scipy():
    from scipy.spatial import distance

    rng = np.random.default_rng(3)
    for _ in range(5):
        a, b = rng.random(50) < 0.3, rng.random(50) < 0.4
        assert nw.dice(a, b) == pytest.approx(1 - distance.dice(a, b))
        assert nw.jaccard(a, b) == pytest.approx(1 - distance.jaccard(a, b))
        smaller = min(a.sum(), b.sum())
        assert nw.overlap_coefficient(a, b) == pytest.approx((a & b).sum() / smaller)
    assert nw.dice([0, 0], [0, 0]) == 0.0 and nw.jaccard([0, 0], [0, 0]) == 0.0
    with pytest.raises(DataError, match="different sizes"):
        nw.dice([1, 0], [1, 0, 0])
    with pytest.raises(DataError, match="masks of different sizes"):
        nw.dice(nw.Network([1, 0]), nw.Network([1, 0, 0]))
    with pytest.raises(DataError, match="must be a Network or a 1-D boolean mask"):
        nw.dice([1, 2], [1, 0])


def test_planted_overlap_is_recovered(planted_maps):
    nets = {t: nw.threshold(m, label=t) for t, m in planted_maps.items()}
    assert nw.dice(nets["a"], nets["b"]) == pytest.approx(0.5, abs=0.1)
    assert nw.dice(nets["a"], nets["c"]) < 0.1
    mat = nw.overlap_matrix(nets, metric="dice")
    assert list(mat.index) == ["a", "b", "c"]
    np.testing.assert_allclose(mat.to_numpy(), mat.to_numpy().T)
    assert mat.loc["a", "b"] == pytest.approx(nw.dice(nets["a"], nets["b"]))
    inter = nw.overlap_matrix(list(nets.values()), metric="intersection")
    assert inter.loc["a", "a"] == nets["a"].n_units
    with pytest.raises(ValueError, match="Allowed values for metric .* Did you mean 'jaccard'"):
        nw.overlap_matrix(nets, metric="jacard")
    with pytest.raises(DataError, match="Network labels must be unique"):
        nw.overlap_matrix([nets["a"], nets["a"]])


def test_overlap_test_planted_is_significant(planted_maps):
    nets = {t: nw.threshold(m, label=t) for t, m in planted_maps.items()}
    res = nw.overlap_test(nets["a"], nets["b"], n_permutations=500, random_state=0)
    assert res.observed == pytest.approx(nw.dice(nets["a"], nets["b"]))
    assert res.p_value == pytest.approx(1 / 501) and res.p_exact < 1e-3
    assert res.null_mean < 0.2
    apart = nw.overlap_test(nets["a"], nets["c"], n_permutations=500, random_state=0)
    assert apart.p_value > 0.5
    seg = nw.overlap_test(nets["a"], nets["c"], alternative="less", n_permutations=200,
                          random_state=0)
    assert seg.p_value <= 0.5
    mat = nw.overlap_test_matrix(nets, n_permutations=300, random_state=0)
    assert mat.p_value.loc["a", "b"] == mat.p_value.loc["b", "a"] < 0.01
    assert np.isnan(mat.p_value.loc["a", "a"]) and mat.observed.loc["a", "a"] == 1.0
    assert len(mat.to_frame()) == 3


def test_overlap_test_null_is_uniform_for_independent_networks():
    space = UnitSpace({f"layers.{k}.resid_post": 50 for k in range(4)})
    rng = np.random.default_rng(0)
    template = nw.Network(rng.random(200) < 0.15, space, label="t")
    p = []
    for k in range(300):
        a = nw.random_network(template, random_state=rng)
        b = nw.random_network(template, random_state=rng)
        p.append(nw.overlap_test(a, b, n_permutations=199, random_state=rng).p_value)
    p = np.asarray(p)
    assert (p <= 0.05).mean() <= 0.08      # valid: at most alpha (discrete, so below)
    assert 0.4 < p.mean() < 0.65


def test_hypergeometric_null_equals_explicit_random_draws():
    """The per-layer hypergeometric shortcut has the law of explicit layer-matched draws."""
    space = UnitSpace({f"layers.{k}.resid_post": 40 for k in range(3)})
    rng = np.random.default_rng(0)
    a = nw.Network(rng.random(120) < 0.3, space, label="a")
    b = nw.Network(rng.random(120) < 0.2, space, label="b")
    res = nw.overlap_test(a, b, metric="intersection", n_permutations=4000, random_state=1)
    explicit = np.array([(nw.random_network(a, random_state=rng).mask
                          & nw.random_network(b, random_state=rng).mask).sum()
                         for _ in range(4000)])
    assert stats.ks_2samp(res.null, explicit).pvalue > 0.01
    assert res.null.mean() == pytest.approx(res.expected_intersection, abs=0.1)
    assert explicit.mean() == pytest.approx(res.expected_intersection, abs=0.1)
    # the exact tail equals the explicit Monte-Carlo one within its sampling error
    pmf_tail = nw.overlap_test(a, b, n_permutations=1).p_exact
    mc_tail = (explicit >= (a.mask & b.mask).sum()).mean()
    assert pmf_tail == pytest.approx(mc_tail, abs=4 * np.sqrt(0.25 / 4000) + 1e-3)


def test_overlap_test_errors():
    a = nw.Network([1, 0, 1, 0], label="a")
    with pytest.raises(DataError, match="match='layer' needs the networks' UnitSpace"):
        nw.overlap_test(a, a)
    with pytest.raises(ValueError, match="n_permutations must be a positive integer"):
        nw.overlap_test(a, a, match=None, n_permutations=0)
    with pytest.raises(TypeError, match="b must be a Network"):
        nw.overlap_test(a, [1, 0, 1, 0], match=None)
    with pytest.raises(ValueError, match="Allowed values for alternative"):
        nw.overlap_test(a, a, match=None, alternative="two-sided")


def test_random_network_matches_layer_profile(planted_maps):
    net = nw.threshold(planted_maps["c"], label="c")
    rand = nw.random_network(net, random_state=0)
    assert rand.layer_profile()["n_units"].tolist() == net.layer_profile()["n_units"].tolist()
    assert rand.rule == "random" and rand.label == "random(c)"
    free = nw.random_network(net, match=None, random_state=0)
    assert free.n_units == net.n_units
    again = nw.random_network(net, random_state=0)
    np.testing.assert_array_equal(again.mask, rand.mask)
    with pytest.raises(DataError, match="match='layer' needs the network's UnitSpace"):
        nw.random_network(nw.Network([1, 0]))


# ---------------------------------------------------------------------- conjunction
def test_conjunction_of_maps_and_networks(planted_maps):
    conj = nw.conjunction([planted_maps["a"], planted_maps["b"]])
    assert isinstance(conj, nw.TaskMap) and conj.inference == "prompt"
    np.testing.assert_allclose(conj.z.values, np.minimum(planted_maps["a"].z.values,
                                                         planted_maps["b"].z.values))
    net = nw.threshold(conj)
    shared = set(PLANTED["a"]) & set(PLANTED["b"])
    assert shared <= set(net.columns) and len(set(net.columns) - shared) <= 2
    nets = [nw.threshold(planted_maps[t], label=t) for t in ("a", "b")]
    inter = nw.conjunction(nets)
    np.testing.assert_array_equal(inter.mask, nets[0].mask & nets[1].mask)
    assert inter.label == "a & b"
    neg = nw.conjunction([UnitMap([-3.0, 1.0]), UnitMap([-2.0, -4.0])], tail="negative")
    assert neg.values.tolist() == [-2.0, 1.0]
    with pytest.raises(DataError, match="at least 2 maps or networks"):
        nw.conjunction(nets[:1])
    with pytest.raises(DataError, match="all Networks, all TaskMaps or all UnitMaps"):
        nw.conjunction([nets[0], planted_maps["a"]])


def test_conjunction_of_permutation_maps(planted):
    maps = nw.task_maps(planted, {"a": "a - control", "b": "b - control"},
                        inference="permutation", n_permutations=50, random_state=0)
    conj = nw.conjunction(list(maps.values()))
    np.testing.assert_array_equal(conj.p_fwer.values, np.maximum(maps["a"].p_fwer.values,
                                                                 maps["b"].p_fwer.values))
    net = nw.threshold(conj, correction="maxt")
    assert set(net.columns) <= set(PLANTED["a"]) | set(PLANTED["b"])


# --------------------------------------------------------------------- repeatability
def test_icc_matches_two_way_anova():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(0)
    true = rng.normal(size=30)
    Y = np.c_[true + rng.normal(0, 0.5, 30), true + 1.0 + rng.normal(0, 0.5, 30),
              true + rng.normal(0, 0.5, 30)]
    long = pd.DataFrame({"y": Y.ravel(), "target": np.repeat(np.arange(30), 3),
                         "rater": np.tile(np.arange(3), 30)})
    table = anova_lm(smf.ols("y ~ C(target) + C(rater)", data=long).fit())
    bms, ems = table.loc["C(target)", "mean_sq"], table.loc["Residual", "mean_sq"]
    assert nw.icc(Y) == pytest.approx((bms - ems) / (bms + 2 * ems))
    assert nw.icc([UnitMap(Y[:, 0]), Y[:, 1]]) == pytest.approx(nw.icc(Y[:, :2]))
    with pytest.raises(DataError, match=r"icc needs ratings of shape \(n_targets >= 2, k >= 2\)"):
        nw.icc(np.ones((5, 1)))


def test_repeatability_within_exceeds_across(planted):
    res = nw.repeatability(planted, CONTRASTS, splits="odd_even")
    assert set(res.splits) == {"odd", "even"} and res.splits["odd"] == [1, 3]
    assert len(res.table) == 9 and res.inference == "prompt"
    summary = res.summary()
    for metric in ("dice", "pearson", "icc"):
        assert summary.loc["within task", metric] > summary.loc["across tasks", metric] + 0.3
    same = res.table[res.table["same_task"]]
    assert (same["dice"] > 0.6).all()
    per_run = nw.repeatability(planted, ["a - control", "c - control"], splits="runs",
                               fraction=0.1)
    assert len(per_run.table) == 6 * 4 and (per_run.table["n_units_a"] == 13).all()


def test_repeatability_split_errors(planted):
    with pytest.raises(DataError, match="Run 2 is in splits 'x' and 'y'; splits must be "
                                        "disjoint"):
        nw.repeatability(planted, CONTRASTS, splits={"x": [1, 2], "y": [2, 3]})
    with pytest.raises(DataError, match="at least 2 splits"):
        nw.repeatability(planted, CONTRASTS, splits=[[1, 2, 3, 4]])
    with pytest.raises(DataError, match="Split 'split-2' names run 9"):
        nw.repeatability(planted, CONTRASTS, splits=[[1], [9]])
    with pytest.raises(ValueError, match="Allowed values for splits .* Did you mean "
                                         "'odd_even'"):
        nw.repeatability(planted, CONTRASTS, splits="odd_evn")


def test_array_data_need_events():
    Y = np.zeros((10, 3))
    with pytest.raises(DataError, match="Array data need events"):
        nw.repeatability([Y, Y], ["a - b"])


# -------------------------------------------------------------------- every raise
def _errors(rec, maps):
    space = space8()
    z2 = UnitMap(np.zeros((2, 8)), space, output_type="z_score")
    token = nw.task_map(rec, "a - control", inference="token")
    perm1 = nw.task_map(rec, "a - control", inference="permutation", n_permutations=5,
                        random_state=0)
    perm2 = nw.task_map(rec, "a - control", inference="permutation", n_permutations=5,
                        two_sided=True, random_state=0)
    arrays = [rec.frames(1), rec.frames(2)]
    return [
        (TypeError, "Every network must be a Network, but 'x' is int",
         lambda: nw.save_networks({"x": 1}, "unused")),
        (DataError, r"mask must be 1-D \(one entry per unit\)",
         lambda: nw.Network(np.ones((2, 2), bool))),
        (DataError, "stat_map has 8 units but mask has 2",
         lambda: nw.Network([1, 0], stat_map=UnitMap(np.zeros(8)))),
        (ValueError, "Allowed values for rule", lambda: nw.Network([1, 0], rule="magic")),
        (ValueError, "Allowed values for inference .* Did you mean 'prompt'",
         lambda: nw.Network([1, 0], inference="prompts")),
        (DataError, "to_nifti needs the network's UnitSpace", lambda: nw.Network([1]).to_nifti()),
        (DataError, r"masks of different sizes \(2 and 3 units\)",
         lambda: nw.Network([1, 0]) & nw.Network([1, 0, 0])),
        (DataError, "networks is empty", lambda: nw.overlap_matrix([])),
        (TypeError, "Every network must be a Network, but 'a' is list",
         lambda: nw.overlap_matrix({"a": [1, 0]})),
        (DataError, r"conjunction needs z maps \(output_type 'z_score'\)",
         lambda: nw.conjunction([UnitMap([0.1]), UnitMap([0.2], output_type="p_value")])),
        (DataError, "must share their inference",
         lambda: nw.conjunction([maps["a"], token])),
        (DataError, "all be one-sided or all two-sided",
         lambda: nw.conjunction([perm1, perm2])),
        (DataError, "The maps have different sizes", lambda: nw.icc([np.ones(3), np.ones(4)])),
        (DataError, "icc got NaN or infinite ratings",
         lambda: nw.icc(np.array([[1.0, np.nan], [2.0, 3.0]]))),
        (ValueError, "Allowed values for tail", lambda: nw.repeatability(rec, ["a"], tail="up")),
        (DataError, "contrasts is empty", lambda: nw.repeatability(rec, [])),
        (DataError, r"runs names run 7, but the recording has runs \[1, 2, 3, 4\]",
         lambda: nw.repeatability(rec, ["a - control"], runs=[1, 7])),
        (DataError, "events lists 1 tables for 4 runs",
         lambda: nw.repeatability(rec, ["a - control"], events=[rec.events(1)])),
        (DataError, "data holds no runs", lambda: nw.repeatability([], ["a - control"])),
        (DataError, "runs lists 3 labels for 2 runs of data",
         lambda: nw.repeatability(arrays, ["a"], runs=[1, 2, 3])),
        (DataError, "events lists 1 tables for 2 runs of data",
         lambda: nw.repeatability(arrays, ["a"], events=[rec.events(1)])),
        (DataError, "Split 'x' holds no run",
         lambda: nw.repeatability(rec, ["a - control"], splits={"x": [], "y": [1]})),
        (ValueError, "Allowed values for tail", lambda: maps["a"].p_values("up")),
        (ValueError, "Allowed values for noise_model .* Did you mean 'ar1'",
         lambda: nw.task_map(rec, "a - control", inference="token", noise_model="ar2")),
        (ValueError, "n_permutations must be a positive integer",
         lambda: nw.task_map(rec, "a - control", inference="permutation", n_permutations=0)),
        (DataError, "stat_map must have one value per unit", lambda: nw.threshold(z2)),
        (DataError, "stat_map must have one value per unit", lambda: nw.top_k(z2, k=1)),
        (TypeError, "stat_map must be a TaskMap or a UnitMap, but got list",
         lambda: nw.top_k([1.0, 2.0], k=1)),
        (DataError, "NaN or infinite values; top_k cannot rank them",
         lambda: nw.top_k(UnitMap([np.nan, 1.0]), k=1)),
        (TypeError, "like must be a Network, but got list", lambda: nw.random_network([1, 0])),
    ]


def test_every_error_teaches(planted, planted_maps):
    for error, match, call in _errors(planted, planted_maps):
        with pytest.raises(error, match=match):
            call()
