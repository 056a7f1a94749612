"""The recorder: parity with Hugging Face, batching, storage, resume, interventions."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from llmfmri.models import TINY_FAMILIES, get_adapter
from llmfmri.paradigm import load_paradigm
from llmfmri.recording import (Recording, RecordingConflictError, RecordingIncompleteError,
                               intervene, record)

from _testing import make_paradigm


def full_states(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]), output_hidden_states=True).hidden_states


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_generated_frames_equal_hidden_states(tiny_models, tmp_path, family):
    model = tiny_models[family]
    tok = model.tokenizer
    n_layers = get_adapter(model).n_layers
    rec = record(model, make_paradigm(), sites=["embed", "resid_post"], out=tmp_path / "r",
                 batch_size=3, progress=False)
    assert rec.complete
    for run in rec.runs:
        data, events = rec.data(run), rec.events(run)
        assert data.shape == (len(events), rec.units.n_units) and data.dtype == np.float32
        for pid, ev in events.groupby("prompt_id", sort=False):
            prompt = rec_prompt(rec, pid)
            p_ids = tok(prompt)["input_ids"]
            gen_ids = ev["token_id"].tolist()
            # the generated tokens are those of plain greedy generation
            out = model.generate(torch.tensor([p_ids]), max_new_tokens=5, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
            assert out[0, len(p_ids):].tolist()[:len(gen_ids)] == gen_ids
            hs = full_states(model, p_ids + gen_ids)
            L, n = len(p_ids), len(gen_ids)
            rows = data[ev["onset"].to_numpy()]
            for li, site in [(-1, "embed")] + [(i, f"layers.{i}.resid_post")
                                               for i in range(n_layers - 1)]:
                cols = rec.select(sites=site)
                ref = hs[li + 1][0, L - 1:L - 1 + n].numpy()
                np.testing.assert_allclose(rows[:, cols], ref, rtol=0, atol=1e-5)
            assert ev["position"].tolist() == list(range(L - 1, L - 1 + n))


def rec_prompt(rec, prompt_id):
    p = load_paradigm(rec.paradigm_path)
    sched = p.schedule()
    return sched.loc[sched["prompt_id"] == prompt_id, "prompt"].iloc[0]


@pytest.mark.parametrize("frames", ["prompt", "pooled_last", "pooled_mean", "both"])
def test_prompt_and_pooled_frames(tiny_models, tmp_path, frames):
    model = tiny_models["llama"]
    tok = model.tokenizer
    rec = record(model, make_paradigm(frames=frames, n_runs=1), sites="layers.0.resid_post",
                 out=tmp_path / "r", batch_size=4, progress=False)
    data, events = rec.data(1), rec.events(1)
    for pid, ev in events.groupby("prompt_id", sort=False):
        p_ids = tok(rec_prompt(rec, pid))["input_ids"]
        gen_ids = ev.loc[ev["frame_kind"] == "generated", "token_id"].tolist()
        hs = full_states(model, p_ids + gen_ids)[1][0].numpy()
        rows = data[ev["onset"].to_numpy()]
        L = len(p_ids)
        if frames == "prompt":
            assert ev["token_id"].tolist() == p_ids
            np.testing.assert_allclose(rows, hs[:L], atol=1e-5)
        elif frames == "pooled_last":
            np.testing.assert_allclose(rows, hs[L - 1:L], atol=1e-5)
        elif frames == "pooled_mean":
            np.testing.assert_allclose(rows, hs[:L].mean(0, keepdims=True), atol=1e-5)
        else:
            kinds = ev["frame_kind"].tolist()
            assert kinds == ["prompt"] * L + ["generated"] * len(gen_ids)
            np.testing.assert_allclose(rows[:L], hs[:L], atol=1e-5)
            np.testing.assert_allclose(rows[L:], hs[L - 1:L - 1 + len(gen_ids)], atol=1e-5)
        if frames == "prompt":
            # logprob of each prompt token given its prefix (NaN for the first)
            with torch.no_grad():
                logits = model(torch.tensor([p_ids])).logits[0]
            lp = torch.log_softmax(logits, -1)[torch.arange(L - 1), torch.tensor(p_ids[1:])]
            assert np.isnan(ev["logprob"].iloc[0])
            np.testing.assert_allclose(ev["logprob"].to_numpy()[1:], lp.numpy(), atol=1e-5)


def test_pooled_paradigm_keeps_the_response_as_text(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    tok = model.tokenizer
    rec = record(model, make_paradigm(frames="pooled_last", n_runs=1, max_new_tokens=4),
                 sites="resid_post", out=tmp_path / "r", progress=False)
    ev = rec.events(1)
    assert ev["prompt_id"].is_unique  # still one frame per prompt
    for _, row in ev.iterrows():
        p_ids = tok(rec_prompt(rec, row["prompt_id"]))["input_ids"]
        out = model.generate(torch.tensor([p_ids]), max_new_tokens=4, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        assert row["response"] == tok.decode(out[0, len(p_ids):])


@pytest.mark.parametrize("do_sample", [False, True])
def test_batch_equals_alone(tiny_models, tmp_path, do_sample):
    model = tiny_models["gpt2"]
    par = make_paradigm(do_sample=do_sample, max_new_tokens=6)
    a = record(model, par, sites="all", out=tmp_path / "a", batch_size=1, progress=False)
    b = record(model, par, sites="all", out=tmp_path / "b", batch_size=5, progress=False)
    for run in a.runs:
        ea, eb = a.events(run), b.events(run)
        assert ea["token_id"].tolist() == eb["token_id"].tolist()
        np.testing.assert_allclose(a.data(run), b.data(run), rtol=0, atol=1e-5)


def test_stop_strings_end_generation(tiny_models, tmp_path):
    model = tiny_models["opt"]
    free = record(model, make_paradigm(max_new_tokens=8, n_runs=1), sites="resid_post",
                  out=tmp_path / "free", progress=False)
    ev = free.events(1)
    first = ev[ev["prompt_id"] == ev["prompt_id"].iloc[0]]
    stop = first["token"].iloc[2]  # a token this greedy model really emits at step 2
    stopped = record(model, make_paradigm(max_new_tokens=8, n_runs=1, stop=[stop]),
                     sites="resid_post", out=tmp_path / "stop", progress=False)
    ev2 = stopped.events(1)
    first2 = ev2[ev2["prompt_id"] == first["prompt_id"].iloc[0]]
    assert len(first2) <= 3 and stop in "".join(first2["token"])
    assert len(ev2) < len(ev)


def test_units_subset_equals_columns_of_full(tiny_models, tmp_path):
    model = tiny_models["gpt_neox"]
    par = make_paradigm(n_runs=1)
    full = record(model, par, sites="mlp_act", out=tmp_path / "full", progress=False)
    idx = [0, 5, 17, 95]
    sub = record(model, par, sites="mlp_act", units=idx, out=tmp_path / "sub", progress=False)
    assert sub.units.n_units == 4 * 2
    cols = full.units.table.query("index in @idx")["column"].to_numpy()
    np.testing.assert_array_equal(sub.data(1), full.data(1)[:, cols])


def test_continuous_context(tiny_models, tmp_path):
    model = tiny_models["llama"]
    tok = model.tokenizer
    rec = record(model, make_paradigm(context="continuous", n_runs=1, max_new_tokens=3),
                 sites="layers.0.resid_post", out=tmp_path / "c", progress=False)
    data, ev = rec.data(1), rec.events(1)
    sched = load_paradigm(rec.paradigm_path).schedule()
    context = []
    for _, row in sched.iterrows():
        ids = tok(row["prompt"])["input_ids"]
        gen = ev.loc[ev["prompt_id"] == row["prompt_id"], "token_id"].tolist()
        context_before = len(context)
        context = context + ids + gen
        with torch.no_grad():
            out = model(torch.tensor([context]), output_hidden_states=True)
        frames = data[ev.loc[ev["prompt_id"] == row["prompt_id"], "onset"].to_numpy()]
        start = context_before + len(ids) - 1
        assert ev.loc[ev["prompt_id"] == row["prompt_id"], "position"].tolist()[0] == start
        ref = out.hidden_states[1][0, start:start + len(gen)].numpy()
        np.testing.assert_allclose(frames, ref, rtol=0, atol=1e-5)
    assert len(context) > 40


def test_conflicting_directory_is_refused(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    record(model, make_paradigm(), sites="resid_post", out=tmp_path / "r", progress=False)
    other = make_paradigm(name="other")
    with pytest.raises(RecordingConflictError, match="different recording.*paradigm.*overwrite=True"):
        record(model, other, sites="resid_post", out=tmp_path / "r", progress=False)
    with pytest.raises(RecordingConflictError, match="differs in: .*sites"):
        record(model, make_paradigm(), sites="attn_out", out=tmp_path / "r", progress=False)
    rec = record(model, other, sites="resid_post", out=tmp_path / "r", overwrite=True,
                 progress=False)
    assert rec.task == "other" and rec.complete
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(RecordingConflictError, match="not an llmfmri recording"):
        record(model, other, out=tmp_path / "plain", progress=False)
    assert (tmp_path / "plain" / "notes.txt").read_text() == "mine"


@contextlib.contextmanager
def crash_at_commit(n, monkeypatch):
    """Interrupt the recording (as Ctrl-C would) at its n-th batch commit."""
    from llmfmri.recording import _store

    real_commit = _store.RunWriter.commit
    calls = {"n": 0}

    def crashing_commit(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(_store.RunWriter, "commit", crashing_commit)
    try:
        yield
    finally:
        monkeypatch.setattr(_store.RunWriter, "commit", real_commit)


def test_interrupted_run_is_refused_then_resumed_identically(tiny_models, tmp_path, monkeypatch):
    model = tiny_models["llama"]
    par = make_paradigm(n_runs=1, do_sample=True)
    ref = record(model, par, sites="all", out=tmp_path / "ref", batch_size=2, progress=False)

    with crash_at_commit(3, monkeypatch), pytest.raises(KeyboardInterrupt):
        record(model, par, sites="all", out=tmp_path / "r", batch_size=2, progress=False)
    partial = Recording(tmp_path / "r")
    assert not partial.complete
    with pytest.raises(RecordingIncompleteError, match="run 1 .* incomplete.*same"):
        partial.frames(1)
    # a torn journal line (a crash in the middle of a write) is ignored
    journal = next((tmp_path / "r").rglob("*_journal.jsonl"))
    with open(journal, "ab") as fh:
        fh.write(b'{"prompt_ids": ["control-0')
    resumed = record(model, par, sites="all", out=tmp_path / "r", batch_size=2, progress=False)
    np.testing.assert_array_equal(resumed.data(1), ref.data(1))
    assert resumed.events(1).equals(ref.events(1))
    assert not journal.exists()


_KILL_SCRIPT = """
import sys, time, torch
from llmfmri.models import tiny_model
from llmfmri.recording import _store, record
sys.path.insert(0, {testdir!r})
from _testing import make_paradigm
real = _store.RunWriter.commit
def slow(self, *a, **k):
    real(self, *a, **k)
    time.sleep(0.4)
_store.RunWriter.commit = slow
record(tiny_model("opt"), make_paradigm(n_runs=1), sites="all", out={out!r}, batch_size=1,
       progress=False)
"""


def test_killed_recording_resumes_to_identical_data(tiny_models, tmp_path):
    """kill -9 part-way through, then the same command finishes with identical data."""
    model = tiny_models["opt"]
    out = tmp_path / "killed"
    code = _KILL_SCRIPT.format(testdir=os.path.dirname(__file__), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.time() + 120
    journal = None
    while time.time() < deadline:
        found = list(out.rglob("*_journal.jsonl")) if out.exists() else []
        if found and len(found[0].read_bytes().splitlines()) >= 2:
            journal = found[0]
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert journal is not None, "the recording did not start in time"
    assert not Recording(out).complete
    resumed = record(model, make_paradigm(n_runs=1), sites="all", out=out, batch_size=1,
                     progress=False)
    ref = record(model, make_paradigm(n_runs=1), sites="all", out=tmp_path / "ref",
                 batch_size=1, progress=False)
    np.testing.assert_array_equal(resumed.data(1), ref.data(1))
    assert resumed.events(1).equals(ref.events(1))


def test_complete_runs_are_not_recorded_again(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    rec = record(model, make_paradigm(), out=tmp_path / "r", progress=False)
    before = rec.metadata(1)["end_time"], (rec.path / "units.tsv").stat().st_mtime_ns
    again = record(model, make_paradigm(), out=tmp_path / "r", progress=False)
    assert again.metadata(1)["end_time"] == before[0]


def test_interventions_identity_and_zeroing(tiny_models, tmp_path):
    model = tiny_models["llama"]
    par = make_paradigm(n_runs=1)
    base = record(model, par, sites="resid_post", out=tmp_path / "base", progress=False)
    with intervene(model, {"layers.0.resid_post": lambda h: h}):
        same = record(model, par, sites="resid_post", out=tmp_path / "same", progress=False)
    np.testing.assert_array_equal(same.data(1), base.data(1))

    def zero7(h):
        h = h.clone()
        h[..., 7] = 0
        return h

    with intervene(model, {"layers.0.resid_post": zero7}):
        lesioned = record(model, par, sites="resid_post", out=tmp_path / "zero", progress=False)
    col7 = lesioned.units.table.query("site == 'layers.0.resid_post' and index == 7")["column"]
    assert np.all(lesioned.data(1)[:, col7] == 0)
    layer1 = lesioned.select(layers=1)
    n = min(len(lesioned.events(1)), len(base.events(1)))
    assert not np.allclose(lesioned.data(1)[:n, layer1], base.data(1)[:n, layer1])
    # hooks are removed after the block
    again = record(model, par, sites="resid_post", out=tmp_path / "again", progress=False)
    np.testing.assert_array_equal(again.data(1), base.data(1))


def test_intervention_errors(tiny_models):
    with pytest.raises(TypeError, match="must be callable"):
        intervene(tiny_models["gpt2"], {"resid_post": 3})


def test_nifti_and_bids_export(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    rec = record(model, make_paradigm(), sites="resid_post", out=tmp_path / "r", progress=False)
    img = rec.to_nifti(1, tmp_path / "run1.nii.gz")
    assert img.shape[3] == rec.n_frames(1) and (tmp_path / "run1.nii.gz").exists()
    import nibabel as nib

    back = rec.units.from_volume(np.asanyarray(nib.load(tmp_path / "run1.nii.gz").dataobj))
    np.testing.assert_array_equal(back, rec.data(1))
    with pytest.raises(FileExistsError):
        rec.to_nifti(1, tmp_path / "run1.nii.gz")
    bids = rec.to_bids(tmp_path / "bids")
    from nilearn.glm.first_level import first_level_from_bids

    models, imgs, events, confounds = first_level_from_bids(
        str(bids), rec.task, space_label="units", img_filters=[("desc", "preproc")],
        derivatives_folder="derivatives/llmfmri", slice_time_ref=0.0)
    assert len(imgs[0]) == len(rec.runs)
    assert set(events[0][0]["trial_type"]) == {"control", "science"}


def test_record_argument_errors(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    with pytest.raises(ValueError, match="out must name"):
        record(model, make_paradigm())
    with pytest.raises(ValueError, match="runs=.*does not have"):
        record(model, make_paradigm(), out=tmp_path / "x", runs=[5], progress=False)
    with pytest.raises(ValueError, match="Allowed values for dtype"):
        record(model, make_paradigm(), out=tmp_path / "y", dtype="int8", progress=False)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_recorded_sublayer_sites_match_direct_computation(tiny_models, tmp_path, family):
    """attn_out, mlp_out and mlp_act frames, checked against the block's own arithmetic."""
    model = tiny_models[family]
    adapter = get_adapter(model)
    rec = record(model, make_paradigm(n_runs=1), sites="all", out=tmp_path / "r", progress=False)
    data = rec.data(1).astype(np.float64)

    def site(name):
        return data[:, rec.select(sites=name)]

    pre = site("embed")
    for i in range(adapter.n_layers):
        post = site(f"layers.{i}.resid_post")
        np.testing.assert_allclose(post, pre + site(f"layers.{i}.attn_out") + site(f"layers.{i}.mlp_out"),
                                   rtol=0, atol=1e-5)
        w = adapter.weight_matrices(i)["mlp_out"].detach().double().numpy()
        mod, _ = adapter.hook_point(f"layers.{i}.mlp_act")
        bias = 0 if getattr(mod, "bias", None) is None else mod.bias.detach().double().numpy()
        np.testing.assert_allclose(site(f"layers.{i}.mlp_out"), site(f"layers.{i}.mlp_act") @ w.T + bias,
                                   rtol=0, atol=1e-5)
        pre = post


def test_continuous_run_restarts_when_resumed(tiny_models, tmp_path, monkeypatch):
    model = tiny_models["gpt2"]
    par = make_paradigm(context="continuous", n_runs=1, max_new_tokens=3)
    ref = record(model, par, sites="resid_post", out=tmp_path / "ref", progress=False)
    with crash_at_commit(3, monkeypatch), pytest.raises(KeyboardInterrupt):
        record(model, par, sites="resid_post", out=tmp_path / "r", progress=False)
    resumed = record(model, par, sites="resid_post", out=tmp_path / "r", progress=False)
    np.testing.assert_array_equal(resumed.data(1), ref.data(1))
    assert resumed.events(1).equals(ref.events(1))


def test_recorded_events_follow_the_one_schema(tiny_models, tmp_path):
    """The recorder's events are make_events(schedule, frames per prompt) plus token columns."""
    from llmfmri.paradigm import EVENT_COLUMNS, make_events

    paradigm = make_paradigm(max_new_tokens=3)
    rec = record(tiny_models["llama"], paradigm, out=tmp_path / "r", progress=False)
    schedule = paradigm.schedule()
    for run in rec.runs:
        ev = rec.events(run)
        assert tuple(ev.columns) == EVENT_COLUMNS
        rows = schedule[schedule["run"] == run]
        counts = ev.groupby("prompt_id", sort=False).size().reindex(rows["prompt_id"]).fillna(0)
        expected = make_events(rows, counts.to_numpy(dtype=int))
        prompt_cols = ["onset", "duration", "trial_type", "block", "run", "trial", "prompt_id",
                       "role"]
        pd.testing.assert_frame_equal(ev[prompt_cols], expected[prompt_cols],
                                      check_dtype=False)
        assert set(ev["role"]) == {"task", "control"}
