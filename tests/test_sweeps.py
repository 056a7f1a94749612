"""Sweeps: validation, local and Ray runs with identical results, resume, failing cells, groups."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from llmfmri.cli import main
from llmfmri.exceptions import SweepError
from llmfmri.models import tiny_model
from llmfmri.sweeps import (compare_lesion_controls, gather, group_analysis, load_sweep, run_sweep,
                            save_sweep_tables)

from _testing import make_two_task_paradigm


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    model = tiny_model("llama")
    model.save_pretrained(root / "tiny")
    model.tokenizer.save_pretrained(root / "tiny")
    make_two_task_paradigm(max_new_tokens=4).save(root / "two.yaml")
    return root


def sweep_dict(root, *, models=("tiny",), seeds=(0, 1, 2), **extra):
    return {"schema_version": 1, "name": "tinyseeds", "paradigm": str(root / "two.yaml"),
            "generation": {"do_sample": True, "temperature": 1.0},
            "axes": {"model": [str(root / m) for m in models], "seed": list(seeds)},
            "analysis": {"n_permutations": 20}, "group": {"regress": ["seed"]}, **extra}


def _frames(out, label):
    from llmfmri.recording import load_recording

    rec = load_recording(out / "cells" / label)
    return {r: np.asarray(rec.frames(r)) for r in rec.runs}


def test_local_and_ray_give_identical_tables_and_maps(setup, tmp_path):
    ray = pytest.importorskip("ray")
    sweep = load_sweep(sweep_dict(setup))
    local = run_sweep(sweep, tmp_path / "local", executor="local", verbose=0)
    assert local.complete and local.skipped == []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(sweep, tmp_path / "ray", executor="ray", verbose=0)
    finally:
        ray.shutdown()
    assert remote.complete
    a, b = gather(tmp_path / "local"), gather(tmp_path / "ray")
    drop = ["seconds"]
    pd.testing.assert_frame_equal(a.table.drop(columns=drop, errors="ignore"),
                                  b.table.drop(columns=drop, errors="ignore"))
    assert list(a.cells["cell"]) == ["seed0", "seed1", "seed2"]
    for label in a.cells["cell"]:
        fa, fb = _frames(tmp_path / "local", label), _frames(tmp_path / "ray", label)
        assert all(np.array_equal(fa[r], fb[r]) for r in fa)
    for task in a.tasks:
        ma, _ = a.maps(task)
        mb, _ = b.maps(task)
        assert all(np.array_equal(x.values, y.values) for x, y in zip(ma, mb))
    # different seeds sample different tokens: the cells are not copies of each other
    assert not np.array_equal(_frames(tmp_path / "local", "seed0")[1][:5],
                              _frames(tmp_path / "local", "seed1")[1][:5])


def test_resume_skips_complete_cells_and_failing_cells_do_not_stop_the_others(setup, tmp_path):
    out = tmp_path / "out"
    bad = sweep_dict(setup, models=("tiny", "no-such-model-folder"), seeds=(0,))
    bad["axes"]["model"][1] = str(tmp_path / "no-such-model-folder")
    run = run_sweep(load_sweep(bad), out, verbose=0)
    assert run.failed == ["modelnosuchmodelfolder"]  # local folders are labelled by their name
    failed = [s for s in run.statuses if s["status"] == "failed"][0]
    assert "ModelNotFoundError" in failed["error"]
    good = [s for s in run.statuses if s["status"] == "complete"]
    assert len(good) == 1
    # a killed sweep: one cell was interrupted mid-way (status "running"); the rest is complete
    sweep = load_sweep(sweep_dict(setup, seeds=(0, 1)))
    out2 = tmp_path / "resume"
    first = run_sweep(sweep, out2, verbose=0)
    assert first.complete
    killed = out2 / "cells" / "seed1" / "cell.json"
    status = json.loads(killed.read_text())
    killed.write_text(json.dumps({**status, "status": "running"}))
    kept = out2 / "cells" / "seed0" / "analysis" / "summary.json"
    stamp = os.stat(kept).st_mtime_ns
    again = run_sweep(sweep, out2, verbose=0)
    assert again.skipped == ["seed0"] and again.complete
    assert os.stat(kept).st_mtime_ns == stamp  # not recomputed
    assert json.loads(killed.read_text())["status"] == "complete"


def test_group_analysis_over_cells(setup, tmp_path):
    out = tmp_path / "g"
    sweep = load_sweep(sweep_dict(setup))
    run_sweep(sweep, out, verbose=0)
    res = gather(out)
    assert set(res.table["task"]) == {"science", "arts"}
    assert {"cell", "model", "seed", "task", "n_units", "identification_accuracy"} <= \
        set(res.table.columns)
    one = group_analysis(res, "science", n_permutations=50)
    assert one.contrast == "intercept" and one.summary["n_cells"] == 3
    assert one.permutation.n_permutations == 7       # all 2**3 - 1 sign flips
    assert one.maps["z_score"].inference == "second_level"
    reg = group_analysis(res, "science", regress="seed", n_permutations=5)
    assert list(reg.design.columns) == ["intercept", "seed"]
    np.testing.assert_allclose(reg.design["seed"], [-1.0, 0.0, 1.0])
    written = save_sweep_tables(res, [one, reg])
    names = {p.name for p in written}
    assert {"cells.tsv", "sweep.tsv", "group.tsv"} <= names
    assert any("GroupIntercept_stat-z_statmap.nii.gz" in n for n in names)
    with pytest.raises(Exception, match="not an axis"):
        group_analysis(res, "science", regress="temperature")


def test_sweep_command(setup, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    import yaml

    path.write_text(yaml.safe_dump(sweep_dict(setup, seeds=(0, 1))))
    assert main(["-q", "sweep", str(path), "--out", str(tmp_path / "o"), "--local",
                 "--n-permutations", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 cells complete" in out
    assert (tmp_path / "o" / "sweep.tsv").exists() and (tmp_path / "o" / "group").is_dir()
    # another sweep into the same folder is refused (exit 2), nothing touched
    other = sweep_dict(setup, seeds=(5,))
    path.write_text(yaml.safe_dump(other))
    assert main(["-q", "sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "holds another sweep" in capsys.readouterr().err
    # a failing cell: exit 1, the others written
    bad = sweep_dict(setup, seeds=(0,))
    bad["axes"]["model"].append(str(tmp_path / "missing"))
    path.write_text(yaml.safe_dump(bad))
    assert main(["-q", "sweep", str(path), "--out", str(tmp_path / "bad")]) == 1
    assert "failed: ModelNotFoundError" in capsys.readouterr().out


@pytest.mark.parametrize("edit, field, message", [
    ({"axis": {"seed": [0]}}, "axis", r"unknown key 'axis'.*Did you mean 'axes'"),
    ({"axes": {"seeds": [0]}}, "axes.seeds", r"unknown axis 'seeds'.*Did you mean 'seed'"),
    ({"axes": {"seed": [0, 0]}}, r"axes.seed\[1\]", r"already given at axes.seed\[0\]"),
    ({"axes": {"seed": [-1]}}, r"axes.seed\[0\]", "expected a whole number >= 0"),
    ({"steps": ["networks"]}, "steps", "'record' must be one of the steps"),
    ({"steps": ["record", "network"]}, r"steps\[1\]", r"Did you mean 'networks'"),
    ({"analysis": {"inference": "tokens"}}, "analysis.inference", r"Did you mean 'token'"),
    ({"group": {"regress": ["model"]}}, r"group.regress\[0\]", "non-numeric values"),
    ({"resources": {"num_gpu": 1}}, "resources.num_gpu", r"Did you mean 'num_gpus'"),
])
def test_sweep_file_errors_name_the_field(tmp_path, edit, field, message):
    import yaml

    spec = {"schema_version": 1, "name": "s", "paradigm": "template",
            "axes": {"seed": [0, 1], "model": ["default"]}}
    spec.update(edit)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SweepError, match=message) as info:
        load_sweep(path)
    assert any(p.field and __import__("re").fullmatch(field, p.field) for p in info.value.problems)
    assert all(p.file == str(path) and p.line for p in info.value.problems)


def test_cells_and_labels():
    sweep = load_sweep({"schema_version": 1, "name": "grid", "paradigm": "template",
                        "axes": {"model": ["default", "EleutherAI/pythia-70m"],
                                 "seed": [0, 1]}})
    assert [c.label for c in sweep.cells()] == [
        "modeldefaultseed0", "modeldefaultseed1", "modelEleutherAIpythia70mseed0",
        "modelEleutherAIpythia70mseed1"]
    assert load_sweep({"schema_version": 1, "name": "x", "paradigm": "template"}).cells()[0] \
        .label == "cell"


# ------------------------------------------------------------ lesions, truncation, behaviour
@pytest.fixture(scope="module")
def lesion_setup(setup):
    """The tiny model's folder, a saved weight region (5 % of every matrix), a text file and a
    saved network (its _units.tsv in analysis/, the recording's units.tsv one folder up)."""
    import llmfmri.lesions as ls
    from llmfmri.models import load_model
    from llmfmri.networks import Network
    from llmfmri.units import UnitSpace

    root = setup
    model = load_model(str(root / "tiny"))
    ls.WeightRegion.random(model, 0.05, random_state=0).relabel("core").save(root / "region-core")
    (root / "texts.txt").write_text("The cat sat on the mat and looked at the door.\n"
                                    "A dog ran in the park with a red ball today.\n")
    space = UnitSpace({"layers.0.resid_post": 32, "layers.1.resid_post": 32})
    (root / "net" / "analysis").mkdir(parents=True)
    space.to_tsv(root / "net" / "units.tsv")
    mask = np.zeros(space.n_units, dtype=bool)
    mask[[1, 5, 9, 33, 40, 41]] = True
    Network(mask, space, label="sci", alpha=0.05, correction="fdr").save(
        root / "net" / "analysis", task="tinytwo")
    return root


def lesion_sweep(root, path, **extra):
    import yaml

    spec = {"schema_version": 1, "name": "tinylesion", "paradigm": "two.yaml",
            "generation": {"do_sample": True, "temperature": 1.0},
            "axes": {"model": ["tiny"], "seed": [0, 1],
                     "lesion": ["none", {"weights": "region-core.json", "controls": 2}]},
            "steps": ["record", "networks", "behaviour"], "behaviour": {"texts": ["texts.txt"]},
            "analysis": {"n_permutations": 20}, "group": {"paired": "lesion"}}
    spec.update(extra)
    if "behaviour" not in spec["steps"]:
        del spec["behaviour"]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_weight_lesion_axis_with_controls_runs_lesion_and_control_cells(lesion_setup, tmp_path,
                                                                        capsys):
    root = lesion_setup
    sweep = load_sweep(lesion_sweep(root, root / "weights.yaml"))
    cells = sweep.cells()
    seed0 = [c for c in cells if c.params["seed"] == 0]
    assert [c.label for c in seed0] == ["seed0lesionnone", "seed0lesioncore",
                                        "seed0lesioncorecontrol1", "seed0lesioncorecontrol2"]
    assert [(c.params["lesion_role"], c.params["draw"]) for c in seed0] == [
        ("intact", 0), ("lesion", 0), ("control", 1), ("control", 2)]
    assert seed0[0].params["lesion"] == "none"
    assert all(c.params["lesion"] == {"weights": "region-core.json", "strategy": "zero",
                                      "label": "core", "controls": 2, "random_state": 0}
               for c in seed0[1:])
    out = tmp_path / "out"
    run = run_sweep(sweep, out, verbose=0)
    assert run.complete, [s.get("error") for s in run.statuses]
    status = {s["cell"]: s for s in run.statuses}
    assert "lesion" not in status["seed0lesionnone"]
    applied = status["seed0lesioncore"]["lesion"]
    assert applied["kind"] == "weights" and applied["n_params"] > 0
    # every control draw has the lesion's number of weights, elsewhere
    assert status["seed0lesioncorecontrol1"]["lesion"]["n_params"] == applied["n_params"]
    assert status["seed0lesioncorecontrol1"]["lesion"]["region"] != applied["region"]
    # the zero lesion changes the recording; each control changes it differently
    intact, lesioned = _frames(out, "seed0lesionnone"), _frames(out, "seed0lesioncore")
    c1, c2 = _frames(out, "seed0lesioncorecontrol1"), _frames(out, "seed0lesioncorecontrol2")
    first = lambda f: f[1][:3]  # noqa: E731 - the prompt's first frames (same tokens so far)
    assert not np.allclose(first(intact), first(lesioned))
    assert not np.allclose(first(lesioned), first(c1)) and not np.allclose(first(c1), first(c2))
    # behaviour: a file per cell, one column per set in the tidy tables
    table = pd.read_csv(out / "cells" / "seed0lesioncore" / "behaviour.tsv", sep="\t")
    assert table.loc[0, ["measure", "set", "subset"]].tolist() == ["perplexity", "texts", "all"]
    res = gather(out)
    assert len(res.behaviour) == 8 and res.measures == {"perplexity_texts": ("perplexity",
                                                                             "texts")}
    assert res.table["perplexity_texts"].notna().all() and set(res.table["task"]) == \
        {"science", "arts"}
    assert list(res.cells["lesion"][:4]) == ["none", "core", "core", "core"]
    assert list(res.cells["lesion_kind"][:2]) == ["none", "weights"]
    by_cell = res.behaviour.set_index("cell")["perplexity_texts"]
    assert by_cell["seed0lesioncore"] != by_cell["seed0lesionnone"]
    # paired analysis on the real cells: seed s's lesion with seed s's intact cell
    g = group_analysis(res, "science", paired="lesion", n_permutations=10)
    assert g.pairs[["cell", "intact"]].values.tolist() == [
        ["seed0lesioncore", "seed0lesionnone"], ["seed1lesioncore", "seed1lesionnone"]]
    assert g.summary["n_pairs"] == 2 and g.name == "core - intact"
    assert g.permutation.n_permutations == 3         # all 2**2 - 1 sign flips of pairs
    maps, labels = res.maps("science")
    m = dict(zip(labels, maps))
    np.testing.assert_allclose(g.maps["effect_size"].values, np.mean(
        [m[f"seed{s}lesioncore"].values - m[f"seed{s}lesionnone"].values for s in (0, 1)],
        axis=0), rtol=1e-6, atol=1e-9)
    # the behaviour effect against the control draws' effects
    controls = compare_lesion_controls(res)
    assert len(controls) == 2 and set(controls["seed"]) == {0, 1}
    row = controls.iloc[0]
    assert row["n_controls"] == 2 and row["alternative"] == "greater"
    assert row["effect"] == pytest.approx(by_cell["seed0lesioncore"] - by_cell["seed0lesionnone"])
    assert row["p_empirical"] in (1 / 3, 2 / 3, 1.0)
    # the command resumes (every cell complete) and writes the paired maps and the comparison
    assert main(["-q", "sweep", str(root / "weights.yaml"), "--out", str(out),
                 "--n-permutations", "3"]) == 0
    printed = capsys.readouterr().out
    assert "core - intact" in printed and "lesion-controls.tsv" in printed
    names = {p.name for p in (out / "group").iterdir()}
    assert any("GroupCoreMinusIntact_stat-z" in n for n in names)
    assert {"group.tsv", "lesion-controls.tsv"} <= names and (out / "behaviour.tsv").exists()
    group_table = pd.read_csv(out / "group" / "group.tsv", sep="\t")
    assert group_table["paired"].eq("lesion").sum() == 2
    # the unpaired tests take the intact cells only (one per seed), not lesion and controls
    assert (group_table.loc[group_table["paired"].isna(), "n_cells"] == 2).all()


def test_unit_dimension_and_truncation_lesions_with_controls(lesion_setup, tmp_path):
    root = lesion_setup
    units = "net/analysis/task-tinytwo_contrast-sci_desc-fdr0p05_units.tsv"
    path = lesion_sweep(root, root / "kinds.yaml", generation={}, steps=["record"],
                        group={}, axes={"model": ["tiny"], "lesion": [
                            "none", {"units": units, "controls": 1},
                            {"dimension": [1, 3], "strategy": "scale", "factor": 4,
                             "controls": 1},
                            {"truncation": ["mlp_out", 0, 0.25], "controls": 1}]})
    sweep = load_sweep(path)
    assert [c.label for c in sweep.cells()] == [
        "lesionnone", "lesionsci", "lesionscicontrol1", "lesionL1d3", "lesionL1d3control1",
        "lesionmlpoutL0rho0p25", "lesionmlpoutL0rho0p25control1"]
    run = run_sweep(sweep, tmp_path / "out", verbose=0)
    assert run.complete, [s.get("error") for s in run.statuses]
    s = {x["cell"]: x["lesion"] for x in run.statuses if "lesion" in x}
    assert s["lesionsci"]["n_units"] == 6 and s["lesionscicontrol1"]["n_units"] == 6
    assert s["lesionL1d3"]["dimension"] == [1, 3]
    assert s["lesionL1d3control1"]["dimension"][0] == 1
    assert s["lesionL1d3control1"]["dimension"][1] != 3
    assert s["lesionmlpoutL0rho0p25"]["truncation"] == "truncate(mlp_out,0,0.25)"
    assert s["lesionmlpoutL0rho0p25control1"]["truncation"].endswith("-random")
    frames = {c.label: _frames(tmp_path / "out", c.label)[1] for c in sweep.cells()}
    intact = frames.pop("lesionnone")
    for label, f in frames.items():  # greedy: the first frame is the same prompt token
        assert not np.allclose(f[:1], intact[:1]), label
    assert not np.allclose(frames["lesionsci"][:1], frames["lesionscicontrol1"][:1])


def test_network_file_loads_from_units_table_or_mask(lesion_setup):
    from llmfmri.sweeps import load_network_file

    folder = lesion_setup / "net" / "analysis"
    a = load_network_file(folder / "task-tinytwo_contrast-sci_desc-fdr0p05_units.tsv")
    b = load_network_file(folder / "task-tinytwo_contrast-sci_desc-fdr0p05_mask.nii.gz")
    assert a.columns.tolist() == b.columns.tolist() == [1, 5, 9, 33, 40, 41]
    assert a.units.sites == ["layers.0.resid_post", "layers.1.resid_post"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_network_file(folder / "missing_units.tsv")


def test_truncation_axes_regress_on_rho(lesion_setup, tmp_path):
    from llmfmri.models import load_model
    from llmfmri.recording import record

    root = lesion_setup
    path = lesion_sweep(root, root / "rho.yaml", generation={}, steps=["record", "networks"],
                        axes={"model": ["tiny"], "truncation_matrix": ["mlp_in"],
                              "truncation_layer": [1], "rho": [1.0, 0.5, 0.0]},
                        group={"regress": ["rho"]})
    sweep = load_sweep(path)
    assert [c.label for c in sweep.cells()] == ["rho1", "rho0p5", "rho0"]
    out = tmp_path / "out"
    run = run_sweep(sweep, out, verbose=0)
    assert run.complete, [s.get("error") for s in run.statuses]
    info = {s["cell"]: s["truncation"] for s in run.statuses}
    assert info["rho1"]["rank"] == "full (intact)"
    assert info["rho0p5"]["rank"] == 16 and info["rho0"]["rank"] == 0  # of min(96, 32)
    # rho = 1 is the intact model, exactly (recorded with the cell's one thread: the float32
    # sums of a forward pass depend on the number of threads, by a few 1e-9)
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with threadpool_limits(limits=1):
            ref = record(load_model(str(root / "tiny")), root / "two.yaml",
                         out=tmp_path / "intact", progress=False)
    finally:
        torch.set_num_threads(threads)
    f1 = _frames(out, "rho1")
    assert all(np.array_equal(f1[r], np.asarray(ref.frames(r))) for r in f1)
    assert not np.allclose(_frames(out, "rho0")[1][:1], f1[1][:1])
    res = gather(out)
    from llmfmri.exceptions import ConstantUnitWarning

    # layer 0 is upstream of the truncated layer-1 matrix: its 32 units are the same in every cell
    with pytest.warns(ConstantUnitWarning, match="32 of 64 units are constant over all 3"):
        g = group_analysis(res, "science", regress="rho", n_permutations=5)
    assert g.contrast == "rho" and g.summary["n_cells"] == 3
    np.testing.assert_allclose(g.design["rho"], [0.5, 0.0, -0.5])


def test_behaviour_step_without_networks(lesion_setup, tmp_path):
    root = lesion_setup
    path = lesion_sweep(root, root / "behaviour.yaml", generation={}, steps=["record", "behaviour"],
                        axes={"model": ["tiny"], "lesion": [
                            None, {"dimension": [0, 2], "label": "dimtwo"}]},
                        behaviour={"texts": ["texts.txt"], "tasks": ["template"],
                                   "batch_size": 4},
                        group={})
    sweep = load_sweep(path)
    out = tmp_path / "out"
    run = run_sweep(sweep, out, verbose=0)
    assert run.complete, [s.get("error") for s in run.statuses]
    assert not (out / "cells" / "lesiondimtwo" / "analysis").exists()
    for label in ("lesionnone", "lesiondimtwo"):
        assert (out / "cells" / label / "behaviour.tsv").exists()
        assert (out / "cells" / label / "behaviour-items.tsv").exists()
    res = gather(out)
    assert res.tasks == [] and list(res.table["cell"]) == ["lesionnone", "lesiondimtwo"]
    assert {"perplexity_texts", "accuracy_template", "answer_perplexity_template"} <= \
        set(res.table.columns)
    assert res.table["perplexity_texts"].iloc[0] != res.table["perplexity_texts"].iloc[1]
    assert compare_lesion_controls(res).empty  # no control draws
    written = {p.name for p in save_sweep_tables(res, [])}
    assert {"cells.tsv", "sweep.tsv", "behaviour.tsv"} <= written


def _synthetic_results(tmp_path, monkeypatch, n_seeds=8, n_units=40, planted=(0, 1, 2, 3, 4)):
    """A gathered sweep (seeds x lesion none/core) whose maps are synthetic: intact maps with
    large per-seed offsets, lesioned = intact + 1.0 on the planted units + small noise."""
    from llmfmri.glm import UnitMap
    from llmfmri.units import UnitSpace

    sweep = load_sweep({"schema_version": 1, "name": "syn", "paradigm": "template",
                        "axes": {"seed": list(range(n_seeds)),
                                 "lesion": ["none", {"dimension": [0, 1], "label": "core"}]}})
    res = gather(tmp_path, sweep)
    space = UnitSpace({"layers.0.resid_post": n_units})
    rng = np.random.default_rng(0)
    maps, labels = [], []
    for s in range(n_seeds):
        base = rng.normal(0, 5.0, n_units)
        les = base + rng.normal(0, 0.2, n_units)
        les[list(planted)] += 1.0
        for label, values in ((f"seed{s}lesionnone", base), (f"seed{s}lesioncore", les)):
            maps.append(UnitMap(values, space, output_type="effect_size", contrast="a - b"))
            labels.append(label)
    order = rng.permutation(len(maps))  # pairing goes by the cells' labels, not their order
    maps, labels = [maps[i] for i in order], [labels[i] for i in order]
    monkeypatch.setattr(res, "maps", lambda task, kind="effect_size": (maps, labels))
    return res


def test_paired_analysis_pairs_cells_and_recovers_a_planted_difference(tmp_path, monkeypatch):
    res = _synthetic_results(tmp_path, monkeypatch)
    g = group_analysis(res, "a", paired="lesion", n_permutations=1000)
    assert g.pairs["cell"].tolist() == [f"seed{s}lesioncore" for s in range(8)]
    assert g.pairs["intact"].tolist() == [f"seed{s}lesionnone" for s in range(8)]
    assert g.permutation.n_permutations == 255       # every sign flip of 8 pairs
    assert np.flatnonzero(g.p_fdr.values <= 0.05).tolist() == [0, 1, 2, 3, 4]
    assert np.flatnonzero(g.permutation.p_fwer <= 0.05).tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(g.maps["effect_size"].values[:5], 1.0, atol=0.25)
    assert g.summary["consistency_significant_units"] == 1.0
    # the same cells unpaired: the per-seed offsets swamp the effect
    one = group_analysis(res, "a", n_permutations=0)
    assert not set(range(5)) <= set(np.flatnonzero(one.p_fdr.values <= 0.05))
    with pytest.raises(ValueError, match="paired"):
        group_analysis(res, "a", paired="lesions")
    # a subset of cells as subjects: the intact cells only, or some of the pairs
    intact = [f"seed{s}lesionnone" for s in range(8)]
    g_int = group_analysis(res, "a", cells=intact, n_permutations=0)
    assert sorted(g_int.cells) == intact and g_int.summary["n_cells"] == 8
    assert np.allclose(g_int.design["intercept"], 1)
    g4 = group_analysis(res, "a", paired="lesion", cells=[f"seed{s}lesioncore" for s in range(4)],
                        n_permutations=0)
    assert g4.pairs["intact"].tolist() == intact[:4] and g4.summary["n_pairs"] == 4
    from llmfmri.exceptions import DataError

    with pytest.raises(DataError, match="not cells of the sweep"):
        group_analysis(res, "a", cells=["seed0lesionnon"])


def test_pair_cells():
    from llmfmri.exceptions import DataError
    from llmfmri.sweeps import pair_cells

    cells = pd.DataFrame({"cell": ["m0n", "m0a", "m0b", "m1n", "m1a", "m2a"],
                          "model": ["x", "x", "x", "y", "y", "z"],
                          "lesion": ["none", "a", "b", "none", "a", "a"],
                          "lesion_role": ["intact", "lesion", "lesion", "intact", "lesion",
                                          "lesion"], "draw": 0})
    with pytest.raises(DataError, match="several lesions"):
        pair_cells(cells, ["model"])
    with pytest.raises(DataError, match="Did you mean 'a'"):
        pair_cells(cells, ["model"], lesion="aa")
    pairs = pair_cells(cells, ["model"], lesion="a")   # m2a has no intact cell: left out
    assert pairs[["cell", "intact"]].values.tolist() == [["m0a", "m0n"], ["m1a", "m1n"]]
    with pytest.raises(DataError, match="columns"):
        pair_cells(cells.drop(columns="lesion_role"), ["model"])


LESION_ERRORS = [
    ({"lesion": [{"weights": "missing.json"}]}, r"axes.lesion\[0\].weights", "does not exist"),
    ({"lesion": [{"units": "missing_units.tsv"}]}, r"axes.lesion\[0\].units", "does not exist"),
    ({"lesion": [{"dimension": [1, 2], "strategi": "zero"}]}, r"axes.lesion\[0\].strategi",
     r"Did you mean 'strategy'"),
    ({"lesion": [{"dimension": [1, 2], "strategy": "mean"}]}, r"axes.lesion\[0\].strategy",
     r"one of \['zero', 'scale', 'noise'\]"),
    ({"lesion": [{"dimension": [1, 2], "strategy": "scale"}]}, r"axes.lesion\[0\].strategy",
     "needs factor"),
    ({"lesion": [{"dimension": [1, 2], "truncation": ["mlp_in", 0, 0.5]}]},
     r"axes.lesion\[0\].truncation", "gives dimension and truncation"),
    ({"lesion": ["none", {"dimension": [1]}]}, r"axes.lesion\[1\].dimension", r"\[LAYER, DIM\]"),
    ({"lesion": [{"truncation": ["mlp_inn", 0, 0.5]}]}, r"axes.lesion\[0\].truncation\[0\]",
     r"Did you mean 'mlp_in'"),
    ({"lesion": [{"truncation": ["mlp_in", 0, 0.5], "strategy": "zero"}]},
     r"axes.lesion\[0\].strategy", "takes no strategy"),
    ({"lesion": [{"dimension": [1, 2], "controls": -1}]}, r"axes.lesion\[0\].controls",
     "whole number >= 0"),
    ({"lesion": [{"dimension": [1, 2], "label": "a"}, {"dimension": [1, 3], "label": "a"}]},
     r"axes.lesion\[1\]", "already used"),
    ({"lesion": [3]}, r"axes.lesion\[0\]", "expected none"),
    ({"lesion": [{"units": "net_units.tsv", "strategy": "noise"}]}, r"axes.lesion\[0\].strategy",
     "needs reference"),
    ({"rho": [0.5], "truncation_layer": [1]}, r"axes.truncation_layer",
     "truncation_matrix is missing"),
    ({"rho": [1.5], "truncation_layer": [1], "truncation_matrix": ["mlp_in"]}, r"axes.rho\[0\]",
     r"in \[0, 1\]"),
]


@pytest.mark.parametrize("axes, field, message", LESION_ERRORS)
def test_lesion_axis_errors_name_the_field_and_line(tmp_path, axes, field, message):
    import re

    import yaml

    (tmp_path / "net_units.tsv").write_text("site\tindex\nlayers.0.resid_post\t1\n")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "name": "s", "paradigm": "template",
                                    "axes": axes}, sort_keys=False))
    with pytest.raises(SweepError, match=message) as info:
        load_sweep(path)
    assert any(re.fullmatch(field, p.field) for p in info.value.problems), \
        [p.format() for p in info.value.problems]
    assert all(p.file == str(path) and p.line for p in info.value.problems)


@pytest.mark.parametrize("edit, field, message", [
    ({"group": {"paired": "lesion"}}, "group.paired", "needs a lesion axis"),
    ({"axes": {"lesion": [{"dimension": [1, 2]}]}, "group": {"paired": "lesion"}},
     "group.paired", "has no value none"),
    ({"axes": {"lesion": ["none"]}, "group": {"paired": "lesoin"}}, "group.paired",
     r"Did you mean 'lesion'"),
    ({"axes": {"lesion": ["none"]}, "group": {"paired": "lesion"}, "steps": ["record"]},
     "group.paired", "'networks' is not one of the steps"),
    ({"behaviour": {"texts": ["domains"]}}, "behaviour", "not one of the steps"),
    ({"steps": ["record", "behaviour"], "behaviour": {"texts": ["no_such.txt"]}},
     r"behaviour.texts\[0\]", "does not exist"),
    ({"steps": ["record", "behaviour"], "behaviour": {"texts": ["domain"]}},
     r"behaviour.texts\[0\]", r"Did you mean 'domains'"),
    ({"steps": ["record", "behaviour"], "behaviour": {"task": ["template"]}},
     "behaviour.task", r"Did you mean 'tasks'"),
    ({"steps": ["record", "behaviour"], "behaviour": {"tasks": ["domains"]}},
     r"behaviour.tasks\[0\]", "has no gold answers"),
    ({"steps": ["record", "behaviour"], "behaviour": {"batch_size": 0}},
     "behaviour.batch_size", "whole number >= 1"),
])
def test_behaviour_and_paired_errors_name_the_field(tmp_path, edit, field, message):
    import re

    import yaml

    spec = {"schema_version": 1, "name": "s", "paradigm": "template", "axes": {"seed": [0, 1]}}
    spec.update(edit)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SweepError, match=message) as info:
        load_sweep(path)
    assert any(re.fullmatch(field, p.field) for p in info.value.problems)
    assert all(p.file == str(path) and p.line for p in info.value.problems)


def test_every_sweep_file_in_the_repository_is_valid():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))
    assert {f.name for f in files} >= {"functional_networks_seeds.yaml",
                                       "lesion_controls.yaml"}
    for f in files:
        sweep = load_sweep(f)
        assert sweep.cells(), f
    lesion = load_sweep(files[[f.name for f in files].index("lesion_controls.yaml")])
    roles = [c.params["lesion_role"] for c in lesion.cells()]
    assert roles.count("control") > 0 and roles.count("intact") > 0
    assert lesion.group["paired"] == "lesion" and "behaviour" in lesion.steps


def test_validate_checks_sweep_files(tmp_path, capsys):
    """`llmfmri validate` on a sweep file validates it as a sweep, not as a paradigm."""
    from pathlib import Path

    from llmfmri.cli import main as cli_main

    good = Path(__file__).resolve().parents[1] / "sweeps" / "lesion_controls.yaml"
    assert cli_main(["-q", "validate", str(good)]) == 0
    assert "valid sweep (15 cells)" in capsys.readouterr().out
    bad = tmp_path / "typo.yaml"
    bad.write_text(good.read_text().replace("factor: 4", "factr: 4"))
    assert cli_main(["-q", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "axes.lesion[1].factr: unknown key 'factr'" in err and "Did you mean 'factor'" in err
    assert "conditions" not in err          # not read as a paradigm


def test_cells_load_models_without_transformers_progress_bars(tmp_path, monkeypatch):
    """A sweep's progress is not buried under one 'Loading weights' bar per cell, and the
    user's transformers setting is put back afterwards."""
    from transformers.utils import logging as hf_logging

    from llmfmri.sweeps._run import _load_quietly

    seen = []
    hf_logging.enable_progress_bar()
    assert _load_quietly(lambda name, **kw: seen.append(hf_logging.is_progress_bar_enabled())
                         or name, "m") == "m"
    assert seen == [False] and hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        _load_quietly(lambda name, **kw: name, "m")
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
