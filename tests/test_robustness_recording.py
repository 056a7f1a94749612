"""Issue 15, recorder side: context limits, lossy storage, one writer, damaged journals,
exports that fit their format, names, nilearn interop, and no library warnings."""

import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from llmfmri.exceptions import (ContextLengthError, RecordingConflictError,
                                RecordingIncompleteError, RecordingLockedError, StorageWarning)
from llmfmri.glm import FirstLevelGLM
from llmfmri.models import TINY_FAMILIES, tiny_model
from llmfmri.paradigm import load_paradigm
from llmfmri.recording import Recording, intervene, record

from _testing import make_paradigm

ROOT = Path(__file__).resolve().parents[1]


def two_conditions(control, task, *, context="independent", max_new_tokens=2, frames="generated",
                   names=("control", "science")):
    return load_paradigm({
        "schema_version": 1, "name": "long",
        "conditions": {names[0]: {"role": "control", "prompts": control},
                       names[1]: {"role": "task", "prompts": task}},
        "design": {"type": "block", "sequence": [names[0], names[1], names[0]],
                   "prompts_per_block": {names[0]: len(control) // 2, names[1]: len(task)}},
        "generation": {"max_new_tokens": max_new_tokens}, "context": context, "frames": frames})


# -------------------------------------------------------------------- context length
@pytest.mark.parametrize("family,source", [("gpt2", "config.n_positions"),
                                           ("opt", "config.max_position_embeddings"),
                                           ("gpt_neox", "config.max_position_embeddings"),
                                           ("llama", "config.max_position_embeddings")])
def test_prompts_past_the_context_are_refused_before_writing(tiny_models, tmp_path, family,
                                                             source):
    model = tiny_models[family]  # 256 positions; one byte = one token
    fits = two_conditions(["short one", "short two"], ["x" * 253], max_new_tokens=4)
    too_long = two_conditions(["short one", "short two"], ["x" * 254], max_new_tokens=4)
    match = (rf"1 prompt is too long for the model: tiny-{family} reads at most 256 positions "
             rf"\({source}\), .*max_new_tokens=4 needs n \+ 3. Prompt 'science-001' \(run 1, "
             r"condition 'science'\) has 254 tokens and needs 257. Nothing was written")
    with pytest.raises(ContextLengthError, match=match):
        record(model, too_long, out=tmp_path / "no", progress=False)
    assert not (tmp_path / "no").exists()
    rec = record(model, fits, out=tmp_path / "yes", progress=False)  # 253 + 3 = 256: fits
    assert rec.complete


def test_a_growing_continuous_context_is_refused_before_writing(tiny_models, tmp_path):
    par = two_conditions([f"Control sentence number {i} goes here" for i in range(12)],
                         [f"Task sentence number {i} is about atoms" for i in range(6)],
                         context="continuous", max_new_tokens=8)
    match = (r"In run 1, the continuous context reaches up to 259 positions at prompt "
             r"'control-002' \(prompt 6 of 18: 217 positions for the 5 prompts before it .* "
             r"256 positions \(config.n_positions\). Nothing was written")
    with pytest.raises(ContextLengthError, match=match):
        record(tiny_models["gpt2"], par, out=tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------- storage
def _massive(h):
    h = h.clone()
    h[..., 0] = 1e5
    return h


def test_float16_overflow_is_reported_and_float32_keeps_it(tmp_path):
    model = tiny_model("llama")
    par = make_paradigm(n_runs=1, max_new_tokens=3)
    match = (r"run 1: (\d+) values are beyond the float16 range \(\+-65,504\) and are stored as "
             r"\+-inf in .*_bold.zarr: \1 of \1 frames \(first \[0, 1, 2, 3, 4\]\), 1 units "
             r"\(columns \[0\]; sites \['layers.0.resid_post'\]\); the largest magnitude lost is "
             r"100000. .*dtype='float32'")
    with intervene(model, {"layers.0.resid_post": _massive}):
        with pytest.warns(StorageWarning, match=match):
            rec16 = record(model, par, sites="layers.0.resid_post", out=tmp_path / "f16",
                           dtype="float16", progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rec32 = record(model, par, sites="layers.0.resid_post", out=tmp_path / "f32",
                           progress=False)
    assert np.isinf(rec16.data(1)[:, 0]).all() and (rec32.data(1)[:, 0] == 1e5).all()
    losses = rec16.metadata(1)["storage_losses"]
    assert losses["overflow"] == rec16.n_frames(1) and losses["max_abs"] == 1e5
    assert losses["units"] == [0] and "storage_losses" not in rec32.metadata(1)


def test_bfloat16_model_into_float32_storage_loses_nothing(tmp_path):
    model = tiny_model("gpt2", dtype="bfloat16")
    par = make_paradigm(n_runs=1, max_new_tokens=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = record(model, par, sites="resid_post", out=tmp_path / "r", progress=False)
    ids = model.tokenizer(par.schedule()["prompt"][0])["input_ids"]
    with torch.no_grad():
        hs = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    ev = rec.events(1)
    first = np.flatnonzero(ev["prompt_id"] == ev["prompt_id"][0])[0]
    col = rec.select(layers=0)
    # frame 0 holds the last prompt position of block 0's output, bf16 values kept exactly
    np.testing.assert_array_equal(rec.data(1)[first, col], hs[1][0, -1].float().numpy())


# ------------------------------------------------------------------------ one writer
_HOLDER = """
import sys, time
from llmfmri.recording._lock import recording_lock
with recording_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold(path):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_and_a_killed_one_frees_the_directory(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    out = tmp_path / "r"
    proc = _hold(out)
    try:
        with pytest.raises(RecordingLockedError,
                           match=rf"{out} is being recorded by process pid {proc.pid} on host "
                                 r".*, started .*wrote nothing.*released as soon as"):
            record(model, make_paradigm(), out=out, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [".llmfmri.lock", ".llmfmri.lock.json"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rec = record(model, make_paradigm(), out=out, progress=False)  # the OS freed the lock
    assert rec.complete and not (out / ".llmfmri.lock.json").exists()
    proc = _hold(out)  # readers never need the lock
    try:
        again = Recording(out)
        assert again.data(1).shape == rec.data(1).shape
        FirstLevelGLM(noise_model="ols").fit(again)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_same_label_for_two_models_is_refused(tmp_path):
    a, b = tiny_model("gpt2"), tiny_model("gpt2", seed=1)
    a.llmfmri_info = {**a.llmfmri_info, "model_id": "org1/gpt2"}
    b.llmfmri_info = {**b.llmfmri_info, "model_id": "org2/gpt2"}
    record(a, make_paradigm(), out=tmp_path / "r", progress=False)
    with pytest.raises(RecordingConflictError, match=r"Both models, 'org1/gpt2' and 'org2/gpt2', "
                                                     r"have the BIDS label sub-gpt2"):
        record(b, make_paradigm(), out=tmp_path / "r", progress=False)


# ------------------------------------------------------------------ damaged journals
def _interrupted(model, par, out, monkeypatch, at=4):
    from llmfmri.recording import _store

    real = _store.RunWriter.commit
    calls = {"n": 0}

    def crashing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(_store.RunWriter, "commit", crashing)
    with pytest.raises(KeyboardInterrupt):
        record(model, par, sites="resid_post", out=out, batch_size=1, progress=False)
    monkeypatch.setattr(_store.RunWriter, "commit", real)
    journal = next(out.rglob("*_journal.jsonl"))
    return journal, [json.loads(x) for x in journal.read_text().splitlines()]


@pytest.mark.parametrize("damage", ["second_writer", "second_writer_and_frames", "repeat"])
def test_damaged_journal_is_repaired_on_resume(tiny_models, tmp_path, monkeypatch, caplog,
                                               damage):
    import zarr

    model = tiny_models["gpt2"]
    par = make_paradigm(n_runs=1, max_new_tokens=3)
    ref = record(model, par, sites="resid_post", out=tmp_path / "ref", batch_size=1,
                 progress=False)
    out = tmp_path / "r"
    journal, entries = _interrupted(model, par, out, monkeypatch)
    assert len(entries) == 3
    kept, n_after, why = 3, 5, "batch 3 claims 3 frames after 9"
    if damage.startswith("second_writer"):
        # a second (lockless, older) writer, started from scratch, appended its first two
        # batches after ours: the same prompts, with frame counts starting again at 0
        extra = [entries[0], entries[1]]
    else:  # a batch whose counts and onsets continue, but whose prompt was already recorded
        n, ev = entries[-1]["n_frames"], entries[0]["events"]
        extra = [dict(entries[0], n_frames=n + len(ev),
                      events=[[n + i] + row[1:] for i, row in enumerate(ev)])]
        n_after, why = 4, "batch 3 repeats prompts"
    with open(journal, "a") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in extra))
    if damage == "second_writer_and_frames":  # which also overwrote the frames of our batch 1
        arr = zarr.open_array(str(next(out.rglob("*_bold.zarr"))), mode="r+")
        a, b = entries[0]["n_frames"], entries[1]["n_frames"]
        arr[a:b] = arr[a:b] + 1.0
        kept = 1
    with caplog.at_level(logging.WARNING, logger="llmfmri"):
        resumed = record(model, par, sites="resid_post", out=out, batch_size=1, progress=False)
    assert f"kept the first {kept} of {n_after} batches" in caplog.text and why in caplog.text
    np.testing.assert_array_equal(resumed.data(1), ref.data(1))
    assert resumed.events(1).equals(ref.events(1))


def test_damaged_journal_without_checksums_says_what_to_delete(tiny_models, tmp_path,
                                                               monkeypatch):
    model = tiny_models["gpt2"]
    par = make_paradigm(n_runs=1, max_new_tokens=3)
    out = tmp_path / "r"
    journal, entries = _interrupted(model, par, out, monkeypatch)
    old = [{k: v for k, v in e.items() if k != "crc32"} for e in entries]  # older llmfmri
    old.append(dict(old[0], n_frames=old[-1]["n_frames"] + 100))
    journal.write_text("".join(json.dumps(e) + "\n" for e in old))
    with pytest.raises(RecordingIncompleteError,
                       match=r"run 1 of .* cannot be resumed: its journal .* is inconsistent "
                             r"\(batch 3 claims .*cannot be checked .*Delete the run's files -- "
                             r".*_bold.zarr, .*_journal.jsonl and .*_bold.json"):
        record(model, par, sites="resid_post", out=out, batch_size=1, progress=False)


# ---------------------------------------------------------------------------- export
def test_bids_export_plans_nifti2_and_is_all_or_nothing(tiny_models, tmp_path, monkeypatch):
    import nibabel as nib

    import llmfmri.units._space as space_module

    rec = record(tiny_models["gpt2"], make_paradigm(), out=tmp_path / "r", progress=False)
    real = Recording.to_nifti

    def fails_on_run_2(self, run, *a, **k):
        if run == 2:
            raise MemoryError("no room for run 2")
        return real(self, run, *a, **k)

    monkeypatch.setattr(Recording, "to_nifti", fails_on_run_2)
    with pytest.raises(MemoryError, match="no room for run 2"):
        rec.to_bids(tmp_path / "bids")
    assert not (tmp_path / "bids").exists()
    monkeypatch.setattr(Recording, "to_nifti", real)
    # runs longer than NIfTI-1 allows (here: a limit lowered to 10 frames) are NIfTI-2
    monkeypatch.setattr(space_module, "NIFTI1_MAX_DIM", 10)
    bids = rec.to_bids(tmp_path / "bids")
    img = nib.load(next(bids.rglob("*run-1_space-units_desc-preproc_bold.nii.gz")))
    assert isinstance(img, nib.Nifti2Image)
    np.testing.assert_array_equal(rec.units.from_volume(np.asanyarray(img.dataobj)), rec.data(1))
    side = json.loads(next(bids.rglob("*run-1_bold.json")).read_text())
    assert "signal_scaling=False" in side["SignalScaling"]
    assert "signal_scaling=False" in (bids / "README").read_text()


@pytest.mark.parametrize("noise_model", ["ols", "ar1"])
def test_nilearn_reproduces_our_z_maps_from_the_export(tiny_models, tmp_path, noise_model):
    """nilearn (signal_scaling=False, boxcars, same drift and noise model) on our BIDS export.

    Tolerance 1e-6 on z: both solve the same least squares in float64 from the same float32
    frames (measured ~1e-14); a wrong design, scaling or dof moves z by > 1e-2.
    """
    from nilearn.glm.first_level import first_level_from_bids

    rec = record(tiny_models["gpt2"], make_paradigm(n_runs=2, max_new_tokens=6),
                 sites="resid_post", out=tmp_path / "r", progress=False)
    bids = rec.to_bids(tmp_path / "bids")
    mask = next(bids.rglob("*_desc-brain_mask.nii.gz"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models, imgs, events, _ = first_level_from_bids(
            str(bids), rec.task, space_label="units", img_filters=[("desc", "preproc")],
            derivatives_folder="derivatives/llmfmri", slice_time_ref=0.0, signal_scaling=False,
            hrf_model=None, drift_model="polynomial", drift_order=1, noise_model=noise_model,
            mask_img=str(mask), minimize_memory=True)
        events = [e[e["trial_type"] != "control"] for e in events[0]]
        zimg = models[0].fit(imgs[0], events).compute_contrast("science",
                                                               output_type="z_score")
    theirs = rec.units.from_volume(np.asarray(zimg.dataobj))
    kw = dict(bins=100, bias_correction=False) if noise_model == "ar1" else {}
    ours = FirstLevelGLM(noise_model=noise_model, conditions=["science"], **kw).fit(rec) \
        .compute_contrast("science").values
    assert np.abs(ours).max() > 3
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-6)


def test_nilearn_reads_every_condition_of_the_export(tiny_models, tmp_path):
    from nilearn.glm.first_level import first_level_from_bids

    par = two_conditions(["The weather is", "My food is", "In the park", "On the bus"],
                         ["Atoms are", "Cells are"], frames="pooled_last", max_new_tokens=0,
                         names=("none", "na"))
    rec = record(tiny_models["llama"], par, out=tmp_path / "r", progress=False)
    bids = rec.to_bids(tmp_path / "bids")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, events, _ = first_level_from_bids(
            str(bids), rec.task, space_label="units", img_filters=[("desc", "preproc")],
            derivatives_folder="derivatives/llmfmri", slice_time_ref=0.0)
    ev = events[0][0]
    assert ev["trial_type"].notna().all() and set(ev["trial_type"]) == {"none", "na"}
    assert len(ev) == len(rec.events(1))


# ------------------------------------------------------------------ library warnings
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_recording_prints_no_library_warnings(tiny_models, tmp_path, family, capfd):
    from llmfmri.recording._generate import _cache_kwarg

    model = tiny_models[family]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record(model, make_paradigm(n_runs=1, max_new_tokens=3), out=tmp_path / "r",
               progress=False)
    assert "deprecated" not in capfd.readouterr().err
    import transformers

    if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (5, 24):
        assert _cache_kwarg(type(model).forward) == "cache"


def test_loading_weights_progress_follows_verbose(tmp_path, capfd):
    from llmfmri.models import load_model

    model = tiny_model("gpt2")
    model.save_pretrained(tmp_path / "m")
    model.tokenizer.save_pretrained(tmp_path / "m")
    capfd.readouterr()
    load_model(str(tmp_path / "m"), device="cpu", verbose=0)
    assert "Loading weights" not in capfd.readouterr().err
    load_model(str(tmp_path / "m"), device="cpu", verbose=1)
    assert "Loading weights" in capfd.readouterr().err


def test_device_check_without_cuda_says_so_and_exits_0():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: run benchmarks/device_check.py itself")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"),
                           "--tiny", "llama"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "No CUDA device on this machine" in proc.stdout


def test_float64_model_rounding_is_said(tmp_path):
    model = tiny_model("gpt2").double()
    with pytest.warns(StorageWarning, match=r"computes in float64, but frames are stored in "
                                            r"float32 .*24 bits .*relative error up to 6.0e-08"):
        rec = record(model, make_paradigm(n_runs=1, max_new_tokens=2), sites="embed",
                     out=tmp_path / "r", progress=False)
    assert rec.data(1).dtype == np.float32


def test_array_of_the_wrong_width_says_what_to_delete(tiny_models, tmp_path, monkeypatch):
    import zarr

    model = tiny_models["gpt2"]
    par = make_paradigm(n_runs=1, max_new_tokens=3)
    out = tmp_path / "r"
    _interrupted(model, par, out, monkeypatch)
    bold = next(out.rglob("*_bold.zarr"))
    zarr.create_array(store=str(bold), shape=(10, 65), chunks=(10, 65), dtype="float32",
                      overwrite=True)
    with pytest.raises(RecordingIncompleteError,
                       match=r"cannot be resumed: its array .*_bold.zarr has 65 units per frame, "
                             r"not 64. Delete the run's files"):
        record(model, par, sites="resid_post", out=out, batch_size=1, progress=False)


def test_float64_values_beyond_float32_are_counted(tmp_path):
    model = tiny_model("llama").double()

    def huge(h):
        h = h.clone()
        h[..., 3] = 1e39
        return h

    with intervene(model, {"layers.0.resid_post": huge}), \
            pytest.warns(StorageWarning, match=r"computes in float64"), \
            pytest.warns(StorageWarning, match=r"beyond the float32 range .*columns \[3\].*"
                                               r"largest magnitude lost is 1e\+39"):
        rec = record(model, make_paradigm(n_runs=1, max_new_tokens=2),
                     sites="layers.0.resid_post", out=tmp_path / "r", progress=False)
    assert np.isinf(rec.data(1)[:, 3]).all()


def test_journal_promising_more_frames_than_the_array_holds_is_repaired(tiny_models, tmp_path,
                                                                        monkeypatch, caplog):
    import zarr

    model = tiny_models["gpt2"]
    par = make_paradigm(n_runs=1, max_new_tokens=3)
    ref = record(model, par, sites="resid_post", out=tmp_path / "ref", batch_size=1,
                 progress=False)
    out = tmp_path / "r"
    _, entries = _interrupted(model, par, out, monkeypatch)
    arr = zarr.open_array(str(next(out.rglob("*_bold.zarr"))), mode="r+")
    arr.resize((entries[1]["n_frames"], arr.shape[1]))  # the array lost its last batch
    with caplog.at_level(logging.WARNING, logger="llmfmri"):
        resumed = record(model, par, sites="resid_post", out=out, batch_size=1, progress=False)
    assert "past the 6 frames of the array (journal vs array length)" in caplog.text
    assert "kept the first 2 of 3 batches" in caplog.text
    np.testing.assert_array_equal(resumed.data(1), ref.data(1))
