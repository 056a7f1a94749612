"""NeuroMFA on models: network construction, checkpoint series, CLI, training script."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from llmfmri.multifractal import (EDGE_KINDS, NODE_GROUPS, MultifractalError,
                                  MultifractalWarning, NeuroMFA, multifractal_spectrum,
                                  neuron_network, neuron_networks, resolve_checkpoints)
from llmfmri.cli import main as cli_main

from _testing import random_weights as _weights

REPO = Path(__file__).resolve().parents[1]


def _kind(net, kind):
    return net.edge_kind == EDGE_KINDS.index(kind)


def _group(net, block, group):
    return (net.node_block == block) & (net.node_group == NODE_GROUPS.index(group))


# ---------------------------------------------------------------- construction
def test_network_structure_and_weights():
    n = 16
    layers = _weights()
    net = neuron_network(layers, n_neurons=n, random_state=3)
    # per block: q, k, v (3n), z (n), attention output (n), MLP (2n), block output (n)
    assert net.n_nodes == n + 2 * (3 * n + n + n + 2 * n + n)
    counts = {k: int(_kind(net, k).sum()) for k in EDGE_KINDS}
    assert counts == {"q": 2 * n * n, "k": 2 * n * n, "v": 2 * n * n,
                      "attn_mix": 2 * (2 * n * n + n), "o": 2 * n * n, "mlp_in": 2 * 2 * n * n,
                      "mlp_gate": 0, "mlp_out": 2 * 2 * n * n}
    # every edge carries W[out, in] of its matrix
    for kind in ("q", "k", "v", "o", "mlp_in", "mlp_out"):
        e = np.flatnonzero(_kind(net, kind))
        blocks = net.edge_block[e]
        rows = net.node_index[net.target[e]]
        cols = net.node_index[net.source[e]]
        expected = np.array([layers[b][kind][r, c] for b, r, c in zip(blocks, rows, cols)])
        np.testing.assert_array_equal(net.weight[e], expected)
    # structural q/k/v -> z edges have weight 1 (distance 1: never in (1, D])
    np.testing.assert_array_equal(net.weight[_kind(net, "attn_mix")], 1.0)
    # the output of block 0 is the input of block 1
    out0 = np.unique(net.target[_kind(net, "mlp_out") & (net.edge_block == 0)])
    in1 = np.unique(net.source[_kind(net, "q") & (net.edge_block == 1)])
    np.testing.assert_array_equal(out0, in1)
    df = net.to_frame()
    assert set(df["kind"]) == set(EDGE_KINDS) - {"mlp_gate"} and len(df) == net.n_edges
    assert net.nodes_frame()["group"].iloc[0] == "resid"


def test_sampling_reproduces_the_reference_draws():
    # reference (network_extraction.net_sample_nums after np.random.seed(index)):
    # per block nums1 (d), nums2 (d; q/k/v slices and z), nums4 (d), nums5 (2n of d_mlp),
    # and nums6 (d) after the last block
    n, d, d_mlp, seed = 8, 48, 128, 5
    net = neuron_network(_weights(d=d, d_mlp=d_mlp), n_neurons=n, random_state=seed)
    rs = np.random.RandomState(seed)
    for b in range(2):
        nums1 = rs.choice(np.arange(d), n, replace=False)
        nums2 = rs.choice(np.arange(d), n, replace=False)
        nums4 = rs.choice(np.arange(d), n, replace=False)
        nums5 = rs.choice(np.arange(4 * 32), 2 * n, replace=False)
        np.testing.assert_array_equal(net.node_index[_group(net, b, "resid")], nums1)
        for g in ("q", "k", "v", "attn_z"):
            np.testing.assert_array_equal(net.node_index[_group(net, b, g)], nums2)
        np.testing.assert_array_equal(net.node_index[_group(net, b, "attn_out")], nums4)
        np.testing.assert_array_equal(net.node_index[_group(net, b, "mlp")], nums5)
    nums6 = rs.choice(np.arange(d), n, replace=False)
    np.testing.assert_array_equal(net.node_index[_group(net, 2, "resid")], nums6)


def test_same_seed_same_neurons_across_checkpoints():
    a = neuron_networks(_weights(seed=0), n_neurons=8, seeds=[0, 1])
    b = neuron_networks(_weights(seed=1), n_neurons=8, seeds=[0, 1])
    np.testing.assert_array_equal(a[0].node_index, b[0].node_index)
    assert not np.array_equal(a[0].node_index, a[1].node_index)
    assert not np.array_equal(a[0].weight, b[0].weight)


def test_gqa_and_gated_mlp():
    net = neuron_network(_weights(d_kv=16, gated=True), n_neurons=8)
    assert _kind(net, "mlp_gate").sum() == _kind(net, "mlp_in").sum() == 2 * 2 * 8 * 8
    assert net.node_index[_group(net, 0, "k")].max() < 16
    spec = multifractal_spectrum(net, min_edges=5)
    assert np.isfinite(spec.alpha0) and spec.width > 0


@pytest.mark.parametrize("family", ["gpt2", "opt", "gpt_neox", "llama"])
def test_families_from_tiny_models(tiny_models, family):
    from llmfmri.models import get_adapter

    model = tiny_models[family]
    adapter = get_adapter(model)
    net = neuron_network(model, n_neurons=16, random_state=0)
    assert net.family == family and net.n_blocks == adapter.n_layers
    assert _kind(net, "mlp_gate").any() == (family == "llama")
    e = np.flatnonzero(_kind(net, "o") & (net.edge_block == 1))[:5]
    w_o = adapter.weight_matrices(1)["o"].detach().double().numpy()
    np.testing.assert_array_equal(
        net.weight[e], w_o[net.node_index[net.target[e]], net.node_index[net.source[e]]])
    spec = multifractal_spectrum(net)
    assert np.isfinite(spec.tau).all() and spec.n_nodes > 10 and 0 < spec.alpha0 < 5


# ---------------------------------------------------------------- degenerate inputs
def test_error_all_zero_weights():
    layers = _weights(scale=0.0)
    with pytest.raises(MultifractalError, match="All sampled weights are zero"):
        neuron_network(layers, n_neurons=8)


def test_error_layer_without_edge_in_range():
    layers = _weights()
    layers[1]["o"] = np.zeros_like(layers[1]["o"])
    net = neuron_network(layers, n_neurons=16)
    with pytest.raises(MultifractalError, match=r"block 1 'o' \(\|w\| in \[0, 0\]\).*"
                                                r"empty_layers='warn'"):
        multifractal_spectrum(net)
    with pytest.warns(MultifractalWarning, match="block 1 'o'"):
        spec = multifractal_spectrum(net, empty_layers="warn")
    assert np.isfinite(spec.alpha0)
    # weights too large for the default range: |w| >= 1 means d <= 1
    layers = _weights()
    layers[0]["mlp_in"] = np.full_like(layers[0]["mlp_in"], 2.0)
    with pytest.raises(MultifractalError, match=r"\|w\| in \[0.00667, 1\): "
                                                r"block 0 'mlp_in' \(\|w\| in \[2, 2\]\)"):
        multifractal_spectrum(neuron_network(layers, n_neurons=16))


def test_error_too_few_nodes():
    with pytest.raises(MultifractalError, match=r"n_neurons=64 is larger than the d_model \(48\)"
                                                r".*too few neurons"):
        neuron_network(_weights(), n_neurons=64)
    with pytest.raises(MultifractalError, match=r"n_mlp_neurons=200 is larger than d_mlp \(128\)"):
        neuron_network(_weights(), n_neurons=8, n_mlp_neurons=200)
    with pytest.raises(MultifractalError, match="n_neurons must be a positive integer"):
        neuron_network(_weights(), n_neurons=0)
    # 3 neurons per layer: at most 9 edges per node, fewer than the 11 the method requires
    with pytest.raises(MultifractalError, match="Too few nodes: 0 node"):
        multifractal_spectrum(neuron_network(_weights(), n_neurons=3))


def test_error_bad_weights():
    layers = _weights()
    del layers[1]["mlp_out"]
    with pytest.raises(MultifractalError, match=r"Block 1 lacks weight matrices \['mlp_out'\]"):
        neuron_network(layers)
    layers = _weights()
    layers[0]["o"] = layers[0]["o"][:, :40]
    with pytest.raises(MultifractalError, match=r"o has shape \(48, 40\), expected .* \(48, 48\)"):
        neuron_network(layers, n_neurons=8)
    layers = _weights()
    layers[0]["mlp_out"] = layers[0]["mlp_out"].T
    with pytest.raises(MultifractalError, match=r"mlp_out has shape \(128, 48\)"):
        neuron_network(layers, n_neurons=8)
    layers = _weights()
    layers[0]["q"][:] = np.nan
    with pytest.raises(MultifractalError, match="NaN or inf"):
        neuron_network(layers, n_neurons=8)
    with pytest.raises(MultifractalError, match="list of dicts"):
        neuron_network([])


# ---------------------------------------------------------------- checkpoint series
def test_neuromfa_on_weight_lists(tmp_path):
    ckpts = [_weights(seed=0), _weights(seed=1, scale=0.03), _weights(seed=2, scale=0.05)]
    mfa = NeuroMFA(n_neurons=16, n_samples=3).fit(ckpts, steps=[0, 10, 100])
    res = mfa.results_
    assert list(res["step"]) == [0, 10, 100]
    assert res.loc[0, "emergence"] == 0.0  # E(t0) = 0 by construction
    assert {"alpha0", "alpha0_sd", "width", "width_sd", "emergence", "n_samples"} <= set(res)
    assert len(mfa.samples_) == 9 and (res["n_samples"] == 3).all()
    np.testing.assert_allclose(
        res["emergence"], res["width"] / res["width"][0] * np.log(res["alpha0"][0] / res["alpha0"]))
    # larger weights -> shorter distances: the spectrum moves (alpha0 changes)
    assert res["alpha0"].nunique() == 3
    mfa.save(tmp_path / "out")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        mfa.save(tmp_path / "out")
    mfa.save(tmp_path / "out", overwrite=True)
    data = np.load(tmp_path / "out" / "spectra.npz")
    assert data["alpha"].shape == (3, 3, 61) and data["tau"].shape == (3, 3, 61)
    meta = json.loads((tmp_path / "out" / "neuromfa.json").read_text())
    assert meta["params"]["max_distance"] == 150.0
    ax = mfa.plot_spectra()
    assert len(ax.lines) == 6
    fig = mfa.plot_emergence()
    assert len(fig.axes) == 3


def test_neuromfa_filters_and_forward_scheme():
    ckpts = [_weights(seed=0), _weights(seed=1)]
    mfa = NeuroMFA(n_neurons=16, n_samples=2, derivative="forward",
                   spectrum_filter="f_nonpositive").fit(ckpts)
    assert list(mfa.results_["step"]) == [0, 1]
    assert mfa.spectra_[0][0].alpha.shape == (60,)
    with pytest.raises(MultifractalError, match="spectrum_filter.*Did you mean 'both'"):
        NeuroMFA(spectrum_filter="bothh").fit(ckpts)
    with pytest.raises(MultifractalError, match="n_samples must be a positive integer"):
        NeuroMFA(n_samples=0).fit(ckpts)
    with pytest.raises(AttributeError, match="not fitted"):
        NeuroMFA().save("x")


def _save_checkpoint(model, path, tokenizer=True):
    model.save_pretrained(path)
    if tokenizer:
        model.tokenizer.save_pretrained(path)


@pytest.fixture
def trajectory(tmp_path):
    """A fake trajectory folder: tiny LLaMA models saved as step0/step5/step50 + trajectory.tsv."""
    from llmfmri.models import tiny_model

    root = tmp_path / "traj"
    for i, step in enumerate([50, 0, 5]):  # written out of order on purpose
        _save_checkpoint(tiny_model("llama", seed=i), root / f"step{step}", tokenizer=step != 5)
    (root / "trajectory.tsv").write_text(
        "step\ttokens\ttrain_loss\tval_loss\tpath\n0\t0\t5.5\t5.6\tstep0\n"
        "5\t10\t5.0\t5.1\tstep5\n50\t100\t4.0\t4.2\tstep50\n")
    return root


def test_neuromfa_on_trajectory_folder(trajectory):
    mfa = NeuroMFA(n_neurons=16, n_samples=2).fit(trajectory)
    res = mfa.results_
    assert list(res["step"]) == [0, 5, 50]  # step order, not file order
    assert list(res["val_loss"]) == [5.6, 5.1, 4.2]
    assert res["emergence"].iloc[0] == 0 and np.isfinite(res["emergence"]).all()


def test_cli_end_to_end(trajectory, tmp_path, capsys):
    out = tmp_path / "mfa"
    argv = ["-q", "mfa", str(trajectory), "--out", str(out), "--n-neurons", "16",
            "--n-samples", "2"]
    assert cli_main(argv) == 0
    for name in ("neuromfa.tsv", "neuromfa_samples.tsv", "spectra.npz", "neuromfa.json",
                 "spectra.png", "emergence.png"):
        assert (out / name).is_file(), name
    assert "val_loss" in capsys.readouterr().out
    assert cli_main(argv) == 2  # refuses to overwrite: a usage error
    assert "--overwrite" in capsys.readouterr().err
    argv = ["-q", "mfa", str(trajectory / "step0"), str(trajectory / "step5"),
            "--out", str(out), "--n-neurons", "64", "--overwrite"]
    assert cli_main(argv) == 2  # a setting the checkpoints cannot satisfy: bad input
    assert "n_neurons=64 is larger" in capsys.readouterr().err


def test_resolve_checkpoints(tmp_path):
    items, traj = resolve_checkpoints("EleutherAI/pythia-70m", revisions=["step0", "step1000"])
    assert [(lab, st, rev) for lab, st, _, rev in items] == [
        ("EleutherAI/pythia-70m@step0", 0, "step0"), ("EleutherAI/pythia-70m@step1000", 1000,
                                                      "step1000")]
    assert traj is None
    items, _ = resolve_checkpoints(["a/checkpoint-10", "b/checkpoint-200"])
    assert [st for _, st, _, _ in items] == [10, 200]
    items, _ = resolve_checkpoints(["x", "y"], steps=[3, 4])
    assert [st for _, st, _, _ in items] == [3, 4]
    with pytest.raises(MultifractalError, match="single model name"):
        resolve_checkpoints(["a", "b"], revisions=["step0"])
    with pytest.raises(MultifractalError, match="steps has 1 values but there are 2"):
        resolve_checkpoints(["a", "b"], steps=[1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MultifractalError, match="neither a checkpoint"):
        resolve_checkpoints(tmp_path / "empty")


# ---------------------------------------------------------------- real model and training
@pytest.mark.integration
def test_default_model_30_layers(default_model):
    mfa = NeuroMFA(n_neurons=32, n_samples=2).fit([default_model])
    spec = mfa.spectra_[0][0]
    assert mfa.results_["emergence"].iloc[0] == 0
    assert spec.n_nodes > 30 * 100 and np.isfinite(spec.tau).all()
    net = neuron_network(default_model, n_neurons=32)
    assert net.n_blocks == 30
    d = net.distance[~_kind(net, "attn_mix")]
    assert np.mean((d > 1) & (d <= 150)) > 0.9  # the published range fits SmolLM2's weights


@pytest.mark.slow
def test_training_script_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("train_tiny_llama",
                                                  REPO / "scripts" / "train_tiny_llama.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "traj"
    assert mod.main(["--corpus", "synthetic", "--steps", "4", "--d-model", "32", "--n-layers",
                     "1", "--n-heads", "2", "--vocab-size", "300", "--seq-len", "16",
                     "--batch-size", "4", "--eval-batches", "1", "--max-docs", "400",
                     "--out", str(out)]) == 0
    table = (out / "trajectory.tsv").read_text().splitlines()
    assert table[0].startswith("step\ttokens\ttrain_loss\tval_loss")
    assert [row.split("\t")[0] for row in table[1:]] == ["0", "1", "2", "4"]
    meta = json.loads((out / "trajectory.json").read_text())
    assert meta["config"]["num_hidden_layers"] == 1 and len(meta["checkpoints"]) == 4
    mfa = NeuroMFA(n_neurons=8, n_samples=1, min_edges=5).fit(out)
    assert list(mfa.results_["step"]) == [0, 1, 2, 4] and "val_loss" in mfa.results_
    with pytest.raises(SystemExit, match="--overwrite"):
        mod.main(["--corpus", "synthetic", "--steps", "1", "--out", str(out)])


# ---------------------------------------------------------------- remaining messages
def test_path_neighbourhood_on_a_network():
    net = neuron_network(_weights(), n_neurons=16)
    edge = multifractal_spectrum(net)
    path = multifractal_spectrum(net, neighbourhood="path")
    assert path.n_edges > edge.n_edges  # two-hop neighbours within D join the count
    assert np.isfinite(path.alpha0)
    assert net.to_sparse().shape == (net.n_nodes, net.n_nodes)


def test_warning_unsorted_steps():
    with pytest.warns(MultifractalWarning, match=r"not in increasing order.*first checkpoint"):
        NeuroMFA(n_neurons=16, n_samples=1).fit([_weights(seed=0), _weights(seed=1)],
                                                steps=[10, 0])


def test_warning_every_sample_filtered(monkeypatch):
    monkeypatch.setattr(NeuroMFA, "_keep", lambda self, spec: False)
    with pytest.raises(MultifractalError, match=r"w\(t0\) must be positive"), \
            pytest.warns(MultifractalWarning, match="dropped every sample"):
        NeuroMFA(n_neurons=16, n_samples=1, spectrum_filter="both").fit(
            [_weights(seed=0), _weights(seed=1)])


@pytest.mark.parametrize("mutate, match", [
    (lambda L: L[0].update(q=L[0]["q"][None]), "must be 2-D"),
    (lambda L: L[0].update(k=L[0]["k"][:20]), r"k \(20, 48\) and v \(48, 48\) differ"),
    (lambda L: L[0].update(mlp_in=L[0]["mlp_in"][:, :40]), "mlp_in has in_features 40"),
    (lambda L: L[0].update(mlp_gate=np.zeros((5, 48))), r"mlp_gate \(5, 48\) differs"),
])
def test_error_weight_shapes(mutate, match):
    layers = _weights()
    mutate(layers)
    with pytest.raises(MultifractalError, match=match):
        neuron_network(layers, n_neurons=8)


def test_error_messages_series(tmp_path):
    with pytest.raises(MultifractalError, match="n_mlp_neurons must be a positive integer"):
        neuron_network(_weights(), n_neurons=8, n_mlp_neurons=0)
    with pytest.raises(MultifractalError, match="seeds must name at least one seed"):
        neuron_networks(_weights(), seeds=[])
    with pytest.raises(MultifractalError, match="seeds is empty"):
        NeuroMFA(seeds=[]).fit([_weights()])
    with pytest.raises(MultifractalError, match="checkpoints is empty"):
        resolve_checkpoints([])
    with pytest.raises(MultifractalError, match="revisions is empty"):
        resolve_checkpoints("x", revisions=[])
    with pytest.raises(FileNotFoundError, match="No trajectory table"):
        from llmfmri.multifractal import read_trajectory
        read_trajectory(tmp_path)
    (tmp_path / "trajectory.tsv").write_text("epoch\tloss\n0\t1\n")
    with pytest.raises(MultifractalError, match="has no 'step' column"):
        read_trajectory(tmp_path)
    with pytest.raises(MultifractalError, match=r"reference must index a checkpoint \(0..1\)"):
        from llmfmri.multifractal import degree_of_emergence
        degree_of_emergence([1.0, 1.1], [0.2, 0.3], reference=5)
    from llmfmri.multifractal import make_power_law_network
    with pytest.raises(MultifractalError, match="max_distance must be an integer >= 3"):
        make_power_law_network([1.0], max_distance=2.5)
    with pytest.raises(MultifractalError, match="n_neighbours must be positive"):
        make_power_law_network([1.0], n_neighbours=0)
