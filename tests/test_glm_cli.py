"""``llmfmri glm DIR --contrast EXPR``: maps with intent codes and a tidy TSV."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from llmfmri.cli import main
from llmfmri.commands import glm as glm_command
from llmfmri.io import contrast_label
from llmfmri.recording import RecordingSubset
from llmfmri.units import UnitSpace


class TinyRecording:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.units = UnitSpace({"layers.0.resid_post": 6, "layers.1.resid_post": 6})
        self.runs = [1, 2]
        self.task = "functional_networks"
        self._f, self._e = {}, {}
        for r in self.runs:
            n = 120
            block = np.arange(n) // 15
            ev = pd.DataFrame({"onset": np.arange(n), "duration": 1,
                               "trial_type": np.where(block % 2 == 0, "medical_imaging",
                                                      "control"),
                               "block": block, "prompt_id": np.arange(n) // 5,
                               "position": np.arange(n) % 5,
                               "logprob": -rng.random(n)})
            Y = rng.standard_normal((n, 12)).astype(np.float32)
            Y[ev.trial_type == "medical_imaging", :2] += 1.5
            self._f[r], self._e[r] = Y, ev

    def frames(self, run):
        return self._f[run]

    def events(self, run):
        return self._e[run]

    def n_frames(self, run):
        return len(self._f[run])

    def subset(self, columns):
        return RecordingSubset(self, columns)


@pytest.fixture
def fake(monkeypatch):
    rec = TinyRecording()
    monkeypatch.setattr(glm_command, "_load_recording", lambda path: rec)
    return rec


def test_glm_command_writes_maps_and_tsv(fake, tmp_path, capsys):
    out = tmp_path / "glm"
    assert main(["-q", "glm", str(tmp_path / "rec"), "-c", "medical_imaging - control",
                 "-c", "medical_imaging; control", "--confounds", "position,logprob",
                 "--out", str(out)]) == 0
    assert "Wrote 16 maps and tables" in capsys.readouterr().out  # 2 x 7 + 2 designs
    base = out / "task-functionalnetworks_contrast-medicalImagingMinusControl"
    z = nib.load(f"{base}_stat-z_statmap.nii.gz")
    t = nib.load(f"{base}_stat-t_statmap.nii.gz")
    assert z.header.get_intent()[0] == "z score"
    assert t.header.get_intent()[0] == "t test" and t.header.get_intent()[1][0] == 230
    assert nib.load(f"{base}_stat-effect_statmap.nii.gz").header.get_intent()[0] == "estimate"
    assert nib.load(f"{base}_stat-p_statmap.nii.gz").header.get_intent()[0] == "p value"
    tsv = pd.read_csv(f"{base}_statmap.tsv", sep="\t")
    assert tsv.columns.tolist() == ["contrast", "column", "site", "layer", "component", "index",
                                    "z", "effect", "variance", "t", "p", "p_two_sided", "p_fdr"]
    assert (tsv["z"][:2] > 3).all() and (tsv["p_fdr"][:2] < 0.05).all()
    np.testing.assert_allclose(fake.units.from_volume(z.get_fdata()), tsv["z"], rtol=1e-5)
    side = json.loads(open(f"{base}_statmap.json").read())
    assert side["noise_model"] == "ar1" and side["confounds"] == ["position", "logprob"]
    fbase = out / "task-functionalnetworks_contrast-medicalImagingAndControl"
    assert nib.load(f"{fbase}_stat-F_statmap.nii.gz").header.get_intent()[0] == "f test"
    assert "F" in pd.read_csv(f"{fbase}_statmap.tsv", sep="\t").columns
    design = pd.read_csv(out / "task-functionalnetworks_run-1_design.tsv", sep="\t")
    assert "position" in design.columns


def test_glm_command_refuses_to_overwrite_and_subsets_units(fake, tmp_path, capsys):
    argv = ["-q", "glm", str(tmp_path), "-c", "medical_imaging - control", "--out",
            str(tmp_path / "o")]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    assert main(argv + ["--noise-model", "ols"]) == 2  # an existing output: usage error
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before  # untouched
    assert main(argv + ["--overwrite", "--noise-model", "ols"]) == 0
    # a second contrast into the same folder: the shared design files are identical, not a clash
    assert main(["-q", "glm", str(tmp_path), "-c", "control - medical_imaging", "--out",
                 str(tmp_path / "o"), "--noise-model", "ols"]) == 0
    sub = ["-q", "glm", str(tmp_path), "-c", "medical_imaging - control", "--layers", "1",
           "--runs", "2", "--drift-model", "none", "--out", str(tmp_path / "sub")]
    assert main(sub) == 0
    tsv = pd.read_csv(next((tmp_path / "sub").glob("*_statmap.tsv")), sep="\t")
    assert len(tsv) == 6 and set(tsv["layer"]) == {1}
    bad = ["-q", "glm", str(tmp_path), "-c", "medical - control", "--out", str(tmp_path / "bad")]
    assert main(bad) == 2
    assert "Did you mean 'medical_imaging'?" in capsys.readouterr().err


def test_colliding_contrast_names_are_refused_before_writing(fake, tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["-q", "glm", str(tmp_path), "-c", "medical_imaging - control",
            "-c", "medical_imaging-control + 0*control", "--out", str(out)]
    # two different expressions; the second's label differs, so both are written
    assert main(argv) == 0
    clash = ["-q", "glm", str(tmp_path), "-c", "x=medical_imaging - control", "-c",
             "x=control - medical_imaging", "--out", str(tmp_path / "clash")]
    assert main(clash) == 2
    assert "would both be written as 'x'" in capsys.readouterr().err
    assert not (tmp_path / "clash").exists()
    named = ["-q", "glm", str(tmp_path), "-c", "mi=medical_imaging - control", "--out",
             str(tmp_path / "named")]
    assert main(named) == 0
    assert (tmp_path / "named" / "task-functionalnetworks_contrast-mi_stat-z_statmap.nii.gz"
            ).exists()


def test_glm_parser_and_labels(capsys):
    assert main(["glm", "DIR"]) == 2  # --contrast is required: a usage error
    assert "--contrast" in capsys.readouterr().err
    assert glm_command.parse_contrasts(["a - b", "lab=a; b"]) == {"aMinusB": "a - b",
                                                                  "lab": ["a", "b"]}
    assert glm_command.parse_contrasts(["a - b", "a == b"]) == ["a - b", "a == b"]
    assert contrast_label("2*a - b/2") == "2TimesAMinusBOver2"
    assert contrast_label("--") == "minusMinus" and contrast_label("!") == "contrast"
