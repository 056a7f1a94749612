"""Paradigm objects: loading, schedules, seeds, round trips and events tables."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmfmri.paradigm import (Condition, Generation, Paradigm, ParadigmError, collapse_events,
                              library_paradigms, load_paradigm, make_events)
from llmfmri.paradigm import EVENT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "paradigms").glob("*.yaml"))


def block_spec(**over):
    spec = {
        "schema_version": 1,
        "name": "demo",
        "conditions": {
            "control": {"role": "control", "prompts": [f"Control prompt {i}" for i in range(12)]},
            "a": {"role": "task", "prompts": [f"Task a prompt {i}" for i in range(6)]},
            "b": {"role": "task", "prompts": [f"Task b prompt {i}" for i in range(6)]},
        },
        "design": {"type": "block", "sequence": ["control", "task", "control"],
                   "prompts_per_block": {"task": 2, "control": 1}},
        "runs": {"n": 3, "split": "disjoint"},
        "generation": {"max_new_tokens": 5},
    }
    spec.update(over)
    return spec


def event_spec(**over):
    spec = {
        "schema_version": 1,
        "name": "loc",
        "conditions": {
            "words": {"role": "task", "prompts": [f"word list {i}" for i in range(20)]},
            "nonwords": {"role": "control", "prompts": [f"nonword list {i}" for i in range(20)]},
        },
        "design": {"type": "event", "max_consecutive": 2},
        "runs": 2,
        "frames": "pooled_last",
        "generation": {"max_new_tokens": 0},
    }
    spec.update(over)
    return spec


# ----------------------------------------------------------------------------- loading
def test_attributes_follow_the_contract():
    p = load_paradigm(block_spec())
    assert isinstance(p, Paradigm)
    assert p.name == "demo" and p.path is None and p.design_type == "block"
    assert p.n_runs == 3 and p.split == "disjoint" and p.seed == 0
    assert p.frames == "generated" and p.context == "independent"
    assert isinstance(p.conditions["a"], Condition)
    assert p.conditions["a"].prompts == tuple(f"Task a prompt {i}" for i in range(6))
    assert p.conditions["a"].answers is None and p.conditions["control"].role == "control"
    assert p.generation == Generation(max_new_tokens=5, do_sample=False, temperature=1.0,
                                      top_p=1.0, seed=0, stop=(), chat_template=False)
    assert p.task_conditions == ["a", "b"] and p.control_conditions == ["control"]
    assert repr(p) == "<Paradigm 'demo': block design, 3 conditions, 3 runs, frames 'generated'>"


def test_file_source_sets_path_and_resolves_prompt_files(tmp_path):
    (tmp_path / "stim").mkdir()
    (tmp_path / "stim" / "control.txt").write_text("# a comment\nTea is\n\n  Rain is  \n",
                                                   encoding="utf-8")
    (tmp_path / "stim" / "maths.tsv").write_text("prompt\tanswer\n2 + 2 =\t4\n3 + 3 =\t6\n",
                                                 encoding="utf-8")
    (tmp_path / "p.yaml").write_text(
        "schema_version: 1\nname: files\nconditions:\n"
        "  control: {role: control, prompts_file: stim/control.txt}\n"
        "  maths: {role: task, prompts_file: stim/maths.tsv}\n"
        "design: {type: event}\nframes: pooled_mean\n", encoding="utf-8")
    p = load_paradigm(tmp_path / "p.yaml")
    assert p.path == tmp_path / "p.yaml"
    assert p.conditions["control"].prompts == ("Tea is", "Rain is")
    assert p.conditions["maths"].answers == ("4", "6")
    # a dict with relative prompt files resolves them against base_dir
    spec = {**p.to_dict()}
    spec["conditions"]["control"] = {"role": "control", "prompts_file": "stim/control.txt"}
    assert load_paradigm(spec, base_dir=tmp_path).conditions["control"].prompts == (
        "Tea is", "Rain is")


def test_text_is_kept_as_written(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "schema_version: 1\nname: raw\nconditions:\n  q:\n    role: task\n"
        "    prompts: [007, yes, 1.50, '  padded  ', 'Note: quoted']\n"
        "    answers: [7, no, 1.5, off, '']\n".replace(", '']", ", x]")
        + "design: {type: event}\nframes: pooled_last\n", encoding="utf-8")
    p = load_paradigm(tmp_path / "p.yaml")
    assert p.conditions["q"].prompts == ("007", "yes", "1.50", "padded", "Note: quoted")
    assert p.conditions["q"].answers == ("7", "no", "1.5", "off", "x")


def test_short_forms_equal_long_forms():
    short = load_paradigm(block_spec(runs=3))
    long_ = load_paradigm(block_spec(design={
        "type": "block", "sequence": ["control", "task", "control"], "tasks": ["a", "b"],
        "task_order": "fixed", "cycles": 1,
        "prompts_per_block": {"control": 1, "a": 2, "b": 2}}))
    assert short == long_
    assert short.to_dict()["runs"] == {"n": 3, "split": "disjoint"}
    assert short.design["tasks"] == ["a", "b"]


def test_load_paradigm_passes_paradigms_through_and_rejects_other_types():
    p = load_paradigm(block_spec())
    assert load_paradigm(p) is p
    assert Paradigm(block_spec()) == p
    with pytest.raises(TypeError, match="source must be a file path, a dict or a Paradigm, but "
                                        "got int"):
        load_paradigm(3)


def test_library_names_resolve():
    assert set(library_paradigms()) >= {"functional_networks", "language_localizer",
                                        "multiple_demand", "theory_of_mind", "domains",
                                        "template"}
    p = load_paradigm("theory_of_mind")
    assert p.name == "theoryOfMind" and p.path.name == "theory_of_mind.yaml"


# ---------------------------------------------------------------------------- schedule
def test_schedule_columns_and_order():
    s = load_paradigm(block_spec()).schedule()
    assert list(s.columns) == ["run", "trial", "block", "trial_type", "role", "prompt_id",
                               "prompt", "answer"]
    assert s["run"].dtype == np.int64 and s["trial"].dtype == np.int64
    assert sorted(s["run"].unique()) == [1, 2, 3]
    for _, part in s.groupby("run"):
        assert part["trial"].tolist() == list(range(len(part)))
        assert part["block"].is_monotonic_increasing
        assert part["prompt_id"].is_unique
        # per run: for each task, control (1) / task (2) / control (1)
        blocks = part.groupby("block")["trial_type"].agg(["first", "size"])
        assert blocks["first"].tolist() == ["control", "a", "control", "control", "b", "control"]
        assert blocks["size"].tolist() == [1, 2, 1, 1, 2, 1]
    assert s["prompt_id"].str.fullmatch(r"(control|a|b)-\d{3}").all()
    row = s.iloc[0]
    idx = int(row["prompt_id"].split("-")[1]) - 1
    assert load_paradigm(block_spec()).conditions[row["trial_type"]].prompts[idx] == row["prompt"]


def test_same_file_and_seed_give_the_same_schedule(tmp_path):
    path = ROOT / "paradigms" / "functional_networks.yaml"
    a = load_paradigm(path).schedule()
    b = load_paradigm(path).schedule()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(load_paradigm(path).schedule(seed=7),
                                  load_paradigm(path).schedule(seed=7))


def test_schedule_is_pinned():
    """The schedule of a fixed file and seed must not drift between numpy or Python versions."""
    s = load_paradigm(ROOT / "paradigms" / "template.yaml").schedule()
    assert s["prompt_id"].tolist() == [
        "control-003", "control-002", "capitals-003", "capitals-004",
        "control-001", "control-006", "arithmetic-002", "arithmetic-004",
        "control-007", "control-008", "capitals-001", "capitals-002",
        "control-005", "control-004", "arithmetic-003", "arithmetic-001"]
    digest = hashlib.sha256(s.to_csv(sep="\t", index=False).encode()).hexdigest()
    assert digest == "076c254d356a08f91991f731faccc8d9c4404e7b66a454c416c04685c837fa25"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_seeds_permute_within_the_block_design(seed):
    p = load_paradigm(block_spec())
    base, other = p.schedule(seed=0), p.schedule(seed=seed)
    # the block structure and the counts per condition per run are fixed by the file ...
    for col in ("run", "trial", "block", "trial_type", "role"):
        assert base[col].tolist() == other[col].tolist()
    # ... the seed only decides which prompts go where, and runs stay disjoint
    assert base["prompt_id"].tolist() != other["prompt_id"].tolist()
    runs = [set(other.loc[other["run"] == r, "prompt_id"]) for r in (1, 2, 3)]
    assert not (runs[0] & runs[1] or runs[0] & runs[2] or runs[1] & runs[2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffled_task_order_keeps_off_on_off(seed):
    design = {"type": "block", "sequence": ["control", "task", "control"], "cycles": 2,
              "task_order": "shuffled", "prompts_per_block": 1}
    spec = block_spec(design=design, runs=1)
    s = load_paradigm(spec).schedule(seed=seed)
    for _, part in s.groupby("run"):
        kinds = part.groupby("block")["trial_type"].first().tolist()
        assert kinds[0::3] == kinds[2::3] == ["control"] * 4
        tasks = kinds[1::3]
        assert sorted(tasks[:2]) == sorted(tasks[2:]) == ["a", "b"]
    orders = {tuple(load_paradigm(spec).schedule(seed=k).groupby(["run", "block"])["trial_type"]
                    .first()) for k in range(8)}
    assert len(orders) > 1


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_event_design_randomises_order_within_constraints(seed):
    p = load_paradigm(event_spec())
    s = p.schedule(seed=seed)
    assert (s["trial"] == s["block"]).all()
    for _, part in s.groupby("run"):
        assert part["trial_type"].value_counts().to_dict() == {"words": 10, "nonwords": 10}
        runs_of = (part["trial_type"] != part["trial_type"].shift()).cumsum()
        assert part.groupby(runs_of).size().max() <= 2
    assert s["trial_type"].tolist() != p.schedule(seed=seed + 10)["trial_type"].tolist()


def test_reuse_split_shares_prompts_across_runs_but_never_within_one():
    spec = event_spec(runs={"n": 4, "split": "reuse"},
                      design={"type": "event", "trials_per_condition": 15})
    s = load_paradigm(spec).schedule()
    assert len(s) == 4 * 30
    for _, part in s.groupby("run"):
        assert part["prompt_id"].is_unique
    assert s["prompt_id"].duplicated().any()


def test_answers_follow_their_prompts():
    spec = event_spec()
    spec["conditions"]["words"]["answers"] = [f"answer {i}" for i in range(20)]
    s = load_paradigm(spec).schedule()
    words = s[s["trial_type"] == "words"]
    assert all(a == "answer " + p.split()[-1] for p, a in zip(words["prompt"], words["answer"]))
    assert s.loc[s["trial_type"] == "nonwords", "answer"].isna().all()


def test_schedule_rejects_a_bad_seed():
    with pytest.raises(ValueError, match="seed must be a whole number >= 0 or None, but got -1"):
        load_paradigm(block_spec()).schedule(seed=-1)


# --------------------------------------------------------------------- round trip, hash
@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_round_trip_load_save_load(tmp_path, path):
    p = load_paradigm(path)
    out = p.save(tmp_path / "saved.yaml")
    q = load_paradigm(out)
    assert q == p and q.sha256 == p.sha256 and q.to_dict() == p.to_dict()
    pd.testing.assert_frame_equal(q.schedule(), p.schedule())
    assert "prompts_file" not in out.read_text(encoding="utf-8")


def test_round_trip_keeps_text_that_yaml_would_convert(tmp_path):
    spec = event_spec()
    spec["conditions"]["words"]["prompts"][:6] = ["yes", "007", "null", "Key: value",
                                                  "line one  \n\tline two", "a\n\n  b: c"]
    spec["conditions"]["words"]["answers"] = ["no", "1.50", "~", "True"] + ["x"] * 16
    p = load_paradigm(spec)
    q = load_paradigm(p.save(tmp_path / "p.yaml"))
    assert q == p and q.conditions["words"].prompts[4] == "line one  \n\tline two"


def test_save_refuses_to_overwrite(tmp_path):
    p = load_paradigm(block_spec())
    target = p.save(tmp_path / "p.yaml")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        p.save(target)
    p.save(target, overwrite=True)
    assert [f.name for f in tmp_path.iterdir()] == ["p.yaml"]


def test_sha256_is_the_canonical_dict():
    import json

    p = load_paradigm(block_spec())
    blob = json.dumps(p.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert p.sha256 == hashlib.sha256(blob.encode()).hexdigest()
    spec = block_spec()
    spec["conditions"]["a"]["prompts"][0] = "Task a prompt zero"
    assert load_paradigm(spec).sha256 != p.sha256
    assert load_paradigm(block_spec(seed=1)) != p
    d = p.to_dict()
    d["name"] = "changed"
    assert p.name == "demo"  # to_dict returns a copy


# ----------------------------------------------------------------------- frames, events
@pytest.mark.parametrize("frames,kind,total", [
    ("generated", "upper bound", 8 * 5), ("pooled_last", "exact", 8), ("pooled_mean", "exact", 8),
    ("prompt", "estimate", None), ("both", "upper bound + estimate", None)])
def test_expected_frames(frames, kind, total):
    p = load_paradigm(block_spec(frames=frames))
    table = p.expected_frames()
    assert table["run"].tolist() == [1, 2, 3] and (table["n_prompts"] == 8).all()
    assert (table["kind"] == kind).all()
    if total is not None:
        assert (table["frames"] == total).all()
    else:
        assert (table["prompt"] > 0).all()
    summary = p.summary()
    assert {"upper bound": "≤ 40", "exact": "8 exactly"}.get(kind, "≈") in summary


def test_summary_states_conditions_runs_blocks_and_frames():
    text = load_paradigm(block_spec()).summary()
    assert text.splitlines()[0] == "<dict>: valid"
    assert "  per run       6 blocks, 8 prompts" in text
    assert "  a          task           6        2       0  1 × 2 prompts" in text
    assert "  control    control       12        4       0  4 × 1 prompt\n" in text
    assert "≤ 40 (upper bound: 8 prompts × max_new_tokens 5" in text
    assert "≤ 120 over 3 runs" in text


def test_make_events_counts_frames_from_zero_in_each_run():
    s = load_paradigm(block_spec()).schedule()
    n = np.arange(len(s)) % 3  # 0, 1 or 2 frames per prompt
    ev = make_events(s, n)
    assert len(ev) == n.sum()
    for r, part in ev.groupby("run"):
        assert part["onset"].tolist() == list(range(len(part)))
    assert (ev["duration"] == 1).all()
    assert tuple(ev.columns) == EVENT_COLUMNS  # the one per-frame schema, as the recorder writes it
    with pytest.raises(ValueError, match=r"n_frames must have one entry per schedule row \(24\)"):
        make_events(s, [1, 2])


def test_collapse_events_by_prompt_and_block():
    p = load_paradigm(block_spec())
    s = p.schedule()
    ev = make_events(s, np.full(len(s), 5))
    ev["token"] = np.arange(len(ev))  # per-frame column: dropped when collapsing
    by_prompt = collapse_events(ev, by="prompt")
    assert len(by_prompt) == len(s)
    assert (by_prompt["duration"] == 5).all() and "token" not in by_prompt
    assert by_prompt["prompt_id"].tolist() == s["prompt_id"].tolist()
    assert by_prompt["role"].tolist() == s["role"].tolist()
    by_block = collapse_events(ev, by="block")
    assert len(by_block) == 3 * 6
    assert by_block["duration"].tolist()[:3] == [5, 10, 5]
    assert by_block["n_prompts"].tolist()[:3] == [1, 2, 1]
    run1 = by_block[by_block["run"] == 1]
    ends = (run1["onset"] + run1["duration"]).to_numpy()
    assert (run1["onset"].to_numpy()[1:] == ends[:-1]).all()


def test_collapse_events_rejects_bad_input():
    with pytest.raises(ValueError, match=r"Allowed values for by are 'prompt', 'block', but got "
                                         r"'blok'\. Did you mean 'block'\?"):
        collapse_events(pd.DataFrame(), by="blok")
    with pytest.raises(ValueError, match=r"events lacks the column\(s\) \['prompt_id'\]"):
        collapse_events(pd.DataFrame({"onset": [0], "duration": [1], "trial_type": ["a"],
                                      "block": [0], "run": [1]}))
    with pytest.raises(TypeError, match="events must be a pandas DataFrame, but got list"):
        collapse_events([])


def test_collapsed_events_feed_nilearn_design_matrix():
    from nilearn.glm.first_level import make_first_level_design_matrix

    s = load_paradigm(block_spec()).schedule()
    ev = collapse_events(make_events(s, np.full(len(s), 4)), by="block")
    run1 = ev[ev["run"] == 1][["onset", "duration", "trial_type"]]
    n_frames = int((run1["onset"] + run1["duration"]).max())
    tasks = run1[run1["trial_type"] != "control"]  # control is the implicit baseline
    dm = make_first_level_design_matrix(np.arange(n_frames, dtype=float), tasks, hrf_model=None,
                                        drift_model=None)
    assert list(dm.columns) == ["a", "b", "constant"]
    # boxcars: frames 0-3 control, then 8 frames of task a, 8 of control, 8 of b, 4 of control
    assert np.allclose(dm["a"].iloc[4:12], 1.0) and np.allclose(dm["a"].iloc[:4], 0)
    assert np.allclose(dm["a"].iloc[12:], 0) and np.allclose(dm["b"].iloc[20:28], 1.0)
    assert n_frames == 32


def test_importing_the_paradigm_package_does_not_import_torch():
    code = ("import sys, llmfmri.paradigm; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "False False"


def test_problem_in_dict_points_to_field():
    with pytest.raises(ParadigmError, match=r"<dict>: design\.tasks\[0\]: 'control' has role "
                                            r"'control'; design\.tasks lists conditions with role "
                                            r"'task'"):
        load_paradigm(block_spec(design={"type": "block", "sequence": ["task"],
                                         "tasks": ["control"], "prompts_per_block": 1}))
