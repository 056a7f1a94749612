"""Issue 15, files: text read as missing, all-or-nothing output sets, NIfTI-2, names."""

import numpy as np
import pandas as pd
import pytest

from llmfmri.exceptions import OutputNameError, ParadigmError
from llmfmri.io import OutputSet, read_events, read_tsv, write_events, write_nifti, write_tsv
from llmfmri.paradigm import load_paradigm
from llmfmri.paradigm._schema import NA_STRINGS
from llmfmri.units import UnitSpace

_YAML = """\
schema_version: 1
name: {name}
conditions:
  {cond}:
    role: task
    prompts: [The atom is, Cells divide by]
  control:
    role: control
    prompts: [The weather is, My food is]
design:
  type: event
frames: pooled_last
"""


def test_the_reserved_missing_values_are_pandas_own():
    from pandas._libs.parsers import STR_NA_VALUES

    assert NA_STRINGS == set(STR_NA_VALUES)


@pytest.mark.parametrize("cond,hint", [("None", "none"), ("NA", "na"), ("NULL", "null_condition"),
                                       ("NaN", "nan_condition"), ("nan", "nan_condition"),
                                       ("null", "null_condition")])
def test_condition_names_read_as_missing_are_refused(tmp_path, cond, hint):
    path = tmp_path / "p.yaml"
    path.write_text(_YAML.format(name="demo", cond=cond))
    match = (rf"p.yaml:4: conditions.{cond}: condition name '{cond}' is read as a missing value "
             rf"\(NaN\) by table readers with pandas' default settings .* Did you mean '{hint}'\?")
    with pytest.raises(ParadigmError, match=match):
        load_paradigm(path)


def test_paradigm_names_read_as_missing_and_non_text_conditions_are_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(_YAML.format(name="'NA'", cond="science"))
    with pytest.raises(ParadigmError, match=r"p.yaml:2: name: paradigm name 'NA' is read as a "
                                            r"missing value .*BIDS task label.*'na'\?"):
        load_paradigm(path)
    spec = {"schema_version": 1, "name": "x", "design": {"type": "event"},
            "frames": "pooled_last",
            "conditions": {None: {"role": "task", "prompts": ["a b", "c d"]},
                           "ctl": {"role": "control", "prompts": ["e f", "g h"]}}}
    with pytest.raises(ParadigmError, match=r"condition names must start with a letter .*found "
                                            r"nothing \(null\)"):
        load_paradigm(spec)


def test_text_that_looks_missing_round_trips_through_our_tsvs(tmp_path):
    tricky = ["None", "NA", "nan", "null", "NULL", "#N/A", "<NA>", "-nan", "007", " ", "a\tb",
              'say "hi"', "line\nbreak"]
    n = len(tricky)
    ev = pd.DataFrame({"onset": np.arange(n), "duration": 1, "trial_type": "science",
                       "block": 0, "run": 1, "trial": 0, "prompt_id": "science-001",
                       "role": "task", "frame_kind": "generated", "position": np.arange(n),
                       "token": tricky, "token_id": np.arange(n), "logprob": np.nan,
                       "response": tricky})
    write_events(ev, tmp_path / "e.tsv")
    back = read_events(tmp_path / "e.tsv")
    assert back["token"].tolist() == tricky and back["response"].tolist() == tricky
    assert back["logprob"].isna().all() and "n/a" in (tmp_path / "e.tsv").read_text()
    sched = pd.DataFrame({"trial_type": ["none", "na"], "answer": ["None", None],
                          "x": [0.1 + 0.2, 1e-300]})
    write_tsv(sched, tmp_path / "s.tsv")
    got = read_tsv(tmp_path / "s.tsv", dtype={"answer": str})
    assert got["answer"][0] == "None" and pd.isna(got["answer"][1])
    assert got["x"].tolist() == sched["x"].tolist()  # floats exactly
    space = UnitSpace({"layers.0.resid_post": 6, "embed": 6}, {"embed": [0, 5]})
    space.to_tsv(tmp_path / "units.tsv")
    assert UnitSpace.from_tsv(tmp_path / "units.tsv") == space


# ------------------------------------------------------------------- all-or-nothing
def test_output_set_failure_part_way_leaves_nothing(tmp_path):
    out = tmp_path / "deep" / "out"

    def boom():
        raise MemoryError("image too large")

    files = OutputSet(out)
    files.add_text("a.txt", "first")
    files.add("sub/b.bin", boom)
    files.add_text("c.txt", "third")
    with pytest.raises(MemoryError, match="image too large"):
        files.write()
    assert not (tmp_path / "deep").exists()
    # with overwrite, replaced files come back as they were
    out.mkdir(parents=True)
    (out / "a.txt").write_text("old a")
    files = OutputSet(out, overwrite=True)
    files.add_text("a.txt", "new a")
    files.add_text("c.txt", "new c")
    files.add("z.bin", boom)
    with pytest.raises(MemoryError):
        files.write()
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert (out / "a.txt").read_text() == "old a"
    files = OutputSet(out, overwrite=True)
    files.add_text("a.txt", "new a")
    assert [p.name for p in files.write()] == ["a.txt"]
    assert (out / "a.txt").read_text() == "new a"
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # no temporary files left


# ------------------------------------------------------------------------- NIfTI-2
def test_more_than_32767_frames_is_nifti2(tmp_path):
    import nibabel as nib

    space = UnitSpace({"layers.0.resid_post": 6})
    assert space.nifti_format() == space.nifti_format(32767) == "NIfTI-1"
    assert space.nifti_format(32768) == "NIfTI-2"
    values = np.random.default_rng(0).standard_normal((32768, 6)).astype(np.float32)
    img = space.to_nifti(values)
    assert isinstance(img, nib.Nifti2Image) and img.shape[3] == 32768
    write_nifti(img, tmp_path / "long.nii.gz")
    back = nib.load(tmp_path / "long.nii.gz")
    assert isinstance(back, nib.Nifti2Image)
    np.testing.assert_array_equal(space.from_volume(np.asanyarray(back.dataobj)), values)
    assert isinstance(space.to_nifti(values[:10]), nib.Nifti1Image)


def test_bids_space_label_must_be_a_label(tmp_path):
    from llmfmri.recording import Recording

    rec = Recording.__new__(Recording)  # the check comes before anything is read
    with pytest.raises(OutputNameError, match=r"space_label must be a BIDS label .*'my units'. "
                                              r"Did you mean 'myunits'\?"):
        rec.to_bids(tmp_path / "bids", space_label="my units")
    assert not (tmp_path / "bids").exists()


def test_written_files_get_the_mode_of_new_files(tmp_path):
    """Atomic writes go through mkstemp (mode 0600): the files must end up as any new file
    would (0666 & ~umask), or results on shared storage are unreadable by the group."""
    import os
    import stat

    import pandas as pd

    from llmfmri._utils import atomic_write_text
    from llmfmri.io import OutputSet, write_tsv

    old = os.umask(0o022)
    try:
        import importlib

        import llmfmri._utils.files as files

        importlib.reload(files)  # the umask is read once, at import
        write_tsv(pd.DataFrame({"a": [1]}), tmp_path / "t.tsv")
        atomic_write_text(tmp_path / "a.txt", "x")
        out = OutputSet(tmp_path / "set")
        out.add_json("s.json", {"a": 1})
        out.write()
        for path in (tmp_path / "t.tsv", tmp_path / "a.txt", tmp_path / "set" / "s.json"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    finally:
        os.umask(old)
        importlib.reload(files)
