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
from llmfmri.sweeps import gather, group_analysis, load_sweep, run_sweep, save_sweep_tables

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
