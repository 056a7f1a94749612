"""Truncation, in-context recall, freezing during training, studies, GLM contrasts, the CLI."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd
import pytest

from _testing import make_paradigm
from llmfmri.exceptions import DataError
from llmfmri.lesions import lesion_contrast
from llmfmri.lesions._catalogs import catalog_languages, catalog_texts
from llmfmri.lesions._freeze import forgetting_study, further_training
from llmfmri.lesions._recall import recall_items, recall_table, score_recall
from llmfmri.lesions._regions import WeightRegion, random_regions
from llmfmri.lesions._truncation import (SVDCache, Truncation, truncate, truncation_rank,
                                         truncation_search)
from llmfmri.lesions._weight_study import core_region_study, weight_lesion_study
from llmfmri.lesions._weights import model_matrices, weight_lesion
from llmfmri.models import TINY_FAMILIES, tiny_model
from llmfmri.recording import record

TEXTS = {"a": ["The cat sat on the mat near the door.", "A dog barked twice at night."],
         "b": ["def f(x):\n    return x + 1", "for i in range(3): print(i)"]}
#: the modules of issue 14, whose names llmfmri.lesions re-exports
MODULES = ("_weights", "_regions", "_importance", "_dimensions", "_truncation", "_recall",
           "_freeze", "_catalogs", "_weight_study")


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model, state):
    import torch

    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


# ------------------------------------------------------------------- truncation
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_truncation_rank_and_exact_restoration(tiny_models, family):
    import torch

    model = tiny_models[family]
    state = _state(model)
    for kind in ("q", "v", "o", "mlp_in", "mlp_out"):
        w0 = model_matrices(model)[f"layers.1.{kind}"].read().clone()
        for rho in (0.0, 0.1, 0.5):
            with truncate(model, kind, 1, rho) as les:
                w = model_matrices(model)[f"layers.1.{kind}"].read()
                r = truncation_rank(w.shape, rho)
                assert les.lesions[0].rank == r == int(np.floor(rho * min(w.shape)))
                assert int(torch.linalg.matrix_rank(w)) == r
                u, s, vh = torch.linalg.svd(w0.double(), full_matrices=False)
                best = (u[:, :r] * s[:r]) @ vh[:r]
                assert torch.allclose(w.double(), best, atol=1e-5)
        assert _same(model, state)
    with pytest.raises(ZeroDivisionError):
        with truncate(model, "mlp_in", 0, 0.2):
            1 / 0
    assert _same(model, state)


def test_random_component_control_and_svd_reuse(tiny_models):
    import torch

    model = tiny_models["llama"]
    cache = SVDCache()
    top = Truncation("mlp_out", 1, 0.25, svd_cache=cache)
    ctrl = Truncation("mlp_out", 1, 0.25, components="random", random_state=0, svd_cache=cache)
    w0 = model_matrices(model)["layers.1.mlp_out"].read().clone()
    errs = []
    for t in (top, ctrl):
        with weight_lesion(model, t):
            w = model_matrices(model)["layers.1.mlp_out"].read()
            assert int(torch.linalg.matrix_rank(w)) == 8
            errs.append(float((w - w0).norm()))
    assert cache.n_svd == 1 and errs[0] < errs[1]  # the top components are the best rank 8
    items = recall_items(20, seed=1, tokenizer=model.tokenizer, single_token=False)
    state = _state(model)
    res = truncation_search(model, items, matrices=["mlp_in", "o"], layers=[0, 1],
                            rhos=[0.5, 0.25, 0.1], texts=TEXTS, n_controls=2, n_boot=200)
    assert _same(model, state)
    assert len(res.grid) == 12 and res.settings["n_svd"] == 4  # one SVD per matrix
    assert res.settings["n_validation"] == 4 and res.settings["n_test"] == 16
    assert set(res.test["model"]) == {"intact", "truncated"}
    assert set(res.perplexity["model"]) == {"intact", "truncated"}
    assert len(res.controls) == 2 and "p_empirical" in res.controls.attrs["comparison"]
    assert res.best["rho"] in (0.5, 0.25, 0.1) and "improves" in res.best
    with pytest.raises(ValueError, match="Allowed values for matrix"):
        Truncation("fc_in", 1, 0.1)
    with pytest.raises(ValueError, match="rho must be a number in \\[0, 1\\]"):
        Truncation("mlp_in", 1, 1.5)
    with pytest.raises(DataError, match="has no matrix 'layers.9.mlp_in'"):
        with truncate(model, "mlp_in", 9, 0.1):
            pass
    with pytest.raises(ValueError, match="Allowed values for metric"):
        truncation_search(model, items, metric="f1")
    with pytest.raises(DataError, match="leaves an empty split"):
        truncation_search(model, items.head(3), validation=0.2)


# ----------------------------------------------------------------------- recall
def test_recall_items_are_reproducible_and_scored():
    import torch

    model = tiny_model("gpt2")
    a = recall_items(30, seed=3, single_token=False)
    b = recall_items(30, seed=3, single_token=False)
    pd.testing.assert_frame_equal(a, b)
    assert (a["answer"] != a["subject"]).all()
    assert a["order"].tolist()[:2] == ["ABBA", "BABA"]
    for row in a.itertuples():
        assert row.prompt.count(row.subject) == 2 and row.prompt.count(row.answer) == 1
    assert not recall_items(30, seed=4, single_token=False).equals(a)
    scores = score_recall(model, a.head(6), batch_size=4)
    assert ((scores["p_correct"] > 0) & (scores["p_correct"] < 1)).all()
    # multi-token names are teacher-forced: the product of their tokens' probabilities
    tok = model.tokenizer
    row = a.iloc[0]
    ids = tok(row.prompt)["input_ids"] + tok(" " + row.answer)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    n0 = len(tok(row.prompt)["input_ids"])
    ref = float(sum(logp[n0 - 1 + i, ids[n0 + i]] for i in range(len(ids) - n0)).exp())
    assert scores["p_correct"].iloc[0] == pytest.approx(ref, rel=1e-6)
    table = recall_table(scores, by="order")
    assert table["n_items"].sum() == 6 and {"ci_low", "p_generic"} <= set(table.columns)
    with pytest.raises(DataError, match="at least 2 distinct names"):
        recall_items(5, names=["Mary", "Mary"])
    with pytest.raises(DataError, match="items lack the column 'answer'"):
        score_recall(model, a.drop(columns="answer"))


def test_recall_with_a_real_tokenizer_keeps_single_token_names(tiny_models):
    from llmfmri.models import tiny_tokenizer

    tok = tiny_tokenizer()
    with pytest.raises(DataError, match="2 distinct names, but 0 remain"):
        recall_items(5, tokenizer=tok)


# --------------------------------------------------------------------- freezing
def test_frozen_region_is_bit_identical_after_training_and_model_restored(tiny_models):
    import torch

    model = tiny_models["llama"]
    state = _state(model)
    region = WeightRegion.random(model, 0.05, random_state=0)
    mats = model_matrices(model)
    frozen_before = {n: mats[n].read()[torch.from_numpy(region.masks[n])].clone()
                     for n in region.nonempty()}
    run = further_training(model, TEXTS["b"], region=region, eval_texts=TEXTS, steps=4,
                           eval_every=2, lr=1e-2, batch_size=2, max_length=16, restore=False)
    assert run.frozen_intact is True
    for n, v in frozen_before.items():
        assert torch.equal(mats[n].read()[torch.from_numpy(region.masks[n])], v)
    assert not _same(model, state)  # the rest did train
    with torch.no_grad():  # put the weights back for the other tests
        for k, v in model.state_dict().items():
            v.copy_(state[k])
    run = further_training(model, TEXTS["b"], region=region, eval_texts=TEXTS, steps=3,
                           eval_every=1, lr=1e-2, batch_size=2, max_length=16)
    assert _same(model, state) and not model.training
    assert run.curve["step"].unique().tolist() == [0, 1, 2, 3]
    assert set(run.curve["text_set"]) == {"a", "b"} and len(run.losses) == 3
    with pytest.raises(ValueError, match="Allowed values for trainable"):
        further_training(model, TEXTS, trainable="some")
    with pytest.raises(TypeError, match="region must be a WeightRegion or None"):
        further_training(model, TEXTS, region="core")


def test_forgetting_study_three_conditions(tiny_models):
    model = tiny_models["gpt2"]
    state = _state(model)
    core = WeightRegion.random(model, 0.05, random_state=1, label="core")
    study = forgetting_study(model, TEXTS["b"], {"a": TEXTS["a"]}, core, n_random=1, steps=3,
                             eval_every=3, lr=5e-3, batch_size=2, max_length=16)
    assert _same(model, state)
    assert list(study.runs) == ["none", "core", "random-0"]
    assert study.runs["random-0"].settings["n_frozen"] == core.n_params
    final = study.final()
    assert len(final) == 3 and (final["step"] == 3).all()
    assert (study.curves[study.curves["step"] == 0]["forgetting"] == 0).all()
    # same batches, same start: the first evaluation is identical in every condition
    assert study.curves[study.curves["step"] == 0]["perplexity"].nunique() == 1


# ---------------------------------------------------- studies, recording, contrast
def test_core_region_study_and_controls(tiny_models, tmp_path):
    from llmfmri.lesions._importance import parameter_importance

    model = tiny_models["opt"]
    state = _state(model)
    imp = parameter_importance(model, TEXTS, max_length=16)
    study = core_region_study(model, imp, TEXTS, fraction=0.05, n_random=3, out=tmp_path / "o")
    assert _same(model, state)
    ctab = study.controls_table()
    assert ctab["kind"].tolist() == ["lesion", "bottom", "random", "random", "random"]
    assert ctab["same_per_matrix_counts"].all()
    assert (ctab["overlap"].iloc[1:] == 0).all()
    assert set(study.summary["control"]) == {"bottom", "random"}
    assert set(study.perplexity().columns) >= {"intact", "lesion", "random-2", "bottom-0"}
    files = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"weight-lesion.json", "weight-lesion-summary.tsv", "weight-lesion-region.json",
            "weight-lesion-region.safetensors"} <= files
    with pytest.raises(FileExistsError, match="already exists"):
        core_region_study(model, imp, TEXTS, fraction=0.05, n_random=1, out=tmp_path / "o")
    with pytest.raises(DataError, match="needs controls"):
        weight_lesion_study(model, Truncation("mlp_in", 0, 0.5), n_random=3)
    res = weight_lesion_study(model, Truncation("mlp_in", 0, 0.5), controls={
        "random": [Truncation("mlp_in", 0, 0.5, components="random", random_state=k)
                   for k in range(2)]}, texts=TEXTS)
    assert res.summary["n_controls"].eq(2).all()


def test_weight_lesion_is_recordable_and_a_glm_contrast(tiny_models, tmp_path):
    model = tiny_models["llama"]
    paradigm = make_paradigm(frames="prompt", max_new_tokens=0, n_runs=1)
    intact = record(model, paradigm, sites="resid_post", out=tmp_path / "intact",
                    progress=False)
    region = WeightRegion.from_entries(model, {"layers.1.mlp_out": [(r, c) for r in range(32)
                                                                    for c in range(10)]})
    with weight_lesion(model, region):
        lesioned = record(model, paradigm, sites="resid_post", out=tmp_path / "les",
                          progress=False)
    res = lesion_contrast(intact, lesioned)
    summary = res.summary()
    # layer 0 is upstream of the lesion: unchanged; layer 1 changes
    assert summary["n_unchanged"].iloc[0] == 32
    prof = res.layer_profile(res.conditions[0])
    assert prof.set_index("layer").loc[1, "mean_abs_effect"] > 0
    assert prof.set_index("layer").loc[0, "mean_abs_effect"] == 0


# ------------------------------------------------------------------------ texts
def test_catalog_texts_are_parallel(tmp_path):
    import gettext  # noqa: F401  (the reader used)

    root = tmp_path / "locale"
    for lang, table in {"de": {"The file could not be opened at all.":
                               "Die Datei konnte gar nicht geöffnet werden.",
                               "Use %s to list every archive member.":
                               "Mit %s jedes Archivmitglied auflisten."},
                        "fr": {"The file could not be opened at all.":
                               "Le fichier n'a pas pu être ouvert du tout.",
                               "Use %s to list every archive member.":
                               "Utilisez %s pour lister chaque membre."}}.items():
        (root / lang / "LC_MESSAGES").mkdir(parents=True)
        _write_mo(root / lang / "LC_MESSAGES" / "demo.mo", table)
    sets = catalog_texts(["de", "fr"], domains=["demo"], locale_dir=root, min_chars=20, join=1)
    assert list(sets) == ["en", "de", "fr"] and all(len(v) == 2 for v in sets.values())
    i = sets["en"].index("Use X to list every archive member.")
    assert sets["de"][i] == "Mit X jedes Archivmitglied auflisten."
    assert catalog_languages(domains=["demo"], locale_dir=root, min_chars=20)["demo"].tolist() \
        == [2, 2]
    with pytest.raises(FileNotFoundError, match="No message catalogue of language 'xx'"):
        catalog_texts(["xx"], domains=["demo"], locale_dir=root)
    with pytest.raises(DataError, match="fewer than join=5"):
        catalog_texts(["de"], domains=["demo"], locale_dir=root, min_chars=20, join=5)


def _write_mo(path, table):
    """A minimal GNU .mo file (little-endian, no hash table)."""
    import struct

    items = sorted([("", "Content-Type: text/plain; charset=UTF-8\n")] + list(table.items()))
    ids = [k.encode() for k, _ in items]
    strs = [v.encode() for _, v in items]
    n = len(items)
    o_ids, o_strs = 28, 28 + 8 * n
    data_start = 28 + 16 * n
    id_table, str_table, blob = [], [], b""
    for s in ids:
        id_table.append((len(s), data_start + len(blob)))
        blob += s + b"\0"
    for s in strs:
        str_table.append((len(s), data_start + len(blob)))
        blob += s + b"\0"
    head = struct.pack("<7I", 0x950412de, 0, n, o_ids, o_strs, 0, 0)
    body = b"".join(struct.pack("<2I", *t) for t in id_table + str_table)
    path.write_bytes(head + body + blob)


# --------------------------------------------------------------------- commands
def test_weight_lesion_names_are_public():
    """Every public name of the weight-lesion modules is on llmfmri.lesions (and in __all__)."""
    import llmfmri.lesions as ls

    for mod in MODULES:
        m = importlib.import_module(f"llmfmri.lesions.{mod}")
        for name in m.__all__:
            assert getattr(ls, name) is getattr(m, name), (mod, name)
            assert name in ls.__all__, (mod, name)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    model = tiny_model("llama")
    model.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path


def _run(argv, add, run):
    import argparse

    from llmfmri._utils import set_verbose

    parser = argparse.ArgumentParser()
    add(parser)
    args = parser.parse_args(argv)
    args.verbose = 0
    set_verbose(0)
    return run(args)


def test_importance_and_truncate_commands(tiny_dir, tmp_path, capsys):
    from llmfmri.commands import importance, truncate

    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TEXTS["a"] + TEXTS["b"]))
    other = tmp_path / "u.txt"
    other.write_text("Another set of lines here.\nAnd one more line of text.\n")
    out = tmp_path / "imp"
    argv = ["--out", str(out), "--model", str(tiny_dir), "--texts", str(texts), str(other),
            "--fraction", "0.05", "--max-length", "32", "--save-scores", "--n-random", "2"]
    assert _run(argv, importance.add_arguments, importance.run) == 0
    files = {p.name for p in out.iterdir()}
    assert {"region-core.json", "region-core.safetensors", "region-bottom.json",
            "region-random-1.json", "region-t-specific.json", "region-u-specific.json",
            "importance.tsv", "regions.tsv", "importance.safetensors", "summary.json"} <= files
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["fraction"] == 0.05
    # one text set: the default regions leave 'specific' out; asking for it says how to fix it
    one = ["--model", str(tiny_dir), "--texts", str(texts), "--max-length", "32"]
    assert _run(["--out", str(tmp_path / "one")] + one, importance.add_arguments,
                importance.run) == 0
    assert not list((tmp_path / "one").glob("*specific*"))
    with pytest.raises(ValueError, match="leave 'specific' out of --regions"):
        _run(["--out", str(tmp_path / "one2"), "--regions", "specific"] + one,
             importance.add_arguments, importance.run)
    with pytest.raises(FileExistsError, match="already exists"):
        _run(argv, importance.add_arguments, importance.run)
    with pytest.raises(ValueError, match="--fraction must be in"):
        _run(["--out", str(tmp_path / "x"), "--model", str(tiny_dir), "--fraction", "2"],
             importance.add_arguments, importance.run)
    # bad settings are refused before any model is loaded (this model does not exist)
    with pytest.raises(ValueError, match="--rhos must be a number in"):
        _run(["--out", str(tmp_path / "x"), "--model", str(tmp_path / "no-model"), "--rhos",
              "1.5"], truncate.add_arguments, truncate.run)
    tout = tmp_path / "trunc"
    targv = ["--out", str(tout), "--model", str(tiny_dir), "--layers", "1", "--rhos", "0.5",
             "0.1", "--n-items", "10", "--texts", str(texts), "--n-controls", "1"]
    with pytest.raises(DataError, match="0 remain"):  # byte tokenizer: no single-token name
        _run(targv, truncate.add_arguments, truncate.run)
    assert _run(targv + ["--multi-token-names"], truncate.add_arguments, truncate.run) == 0
    files = {p.name for p in tout.iterdir()}
    assert {"truncation-grid.tsv", "truncation-test.tsv", "truncation-perplexity.tsv",
            "truncation-controls.tsv", "summary.json"} <= files
    grid = pd.read_csv(tout / "truncation-grid.tsv", sep="\t")
    assert len(grid) == 4 and json.loads((tout / "summary.json").read_text())["settings"][
        "n_svd"] == 2
    capsys.readouterr()


def test_lesion_weights_options(tiny_dir, tmp_path, capsys):
    from llmfmri.commands import _lesion_weights as lesion_weights
    from llmfmri.commands import lesion
    from llmfmri.lesions._importance import parameter_importance

    model = tiny_model("llama")
    imp = parameter_importance(model, TEXTS, max_length=16)
    imp.region("top", 0.05, label="core").save(tmp_path / "core")
    imp.region("bottom", 0.05, label="bottom").save(tmp_path / "bottom")
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TEXTS["a"]))

    add = lesion.add_arguments    # the lesion command has the weight options

    base = ["--model", str(tiny_dir), "--texts", str(texts), "--tasks", "--n-random", "2"]
    argv = ["--out", str(tmp_path / "w"), "--weights", str(tmp_path / "core.json"),
            "--controls", str(tmp_path / "bottom.json")] + base
    assert _run(argv, add, lesion.run) == 0
    table = pd.read_csv(tmp_path / "w" / "weight-lesion-summary.tsv", sep="\t")
    assert set(table["control"]) == {"bottom", "random"}
    argv = ["--out", str(tmp_path / "d"), "--dimension", "1", "3", "--strategy", "scale",
            "--factor", "4"] + base
    assert _run(argv, add, lesion.run) == 0
    argv = ["--out", str(tmp_path / "t"), "--truncation", "mlp_in", "1", "0.25"] + base
    assert _run(argv, add, lesion.run) == 0
    controls = pd.read_csv(tmp_path / "t" / "weight-lesion-controls.tsv", sep="\t")
    assert controls["kind"].tolist() == ["lesion", "random", "random"]
    with pytest.raises(ValueError, match="--strategy mean lesions units only"):
        _run(["--out", str(tmp_path / "m"), "--dimension", "1", "3", "--strategy", "mean"]
             + base, add, lesion.run)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _run(["--out", str(tmp_path / "n"), "--weights", str(tmp_path / "nope.json")] + base,
             add, lesion.run)
    assert json.loads((tmp_path / "w" / "weight-lesion.json").read_text())["settings"][
        "n_random"] == 2                                   # the controls drawn, recorded
    nowhere = ["--model", str(tmp_path / "no-model")]     # refused before any model loads
    with pytest.raises(ValueError, match="takes no strategy"):
        _run(["--out", str(tmp_path / "n"), "--truncation", "mlp_in", "1", "0.25", "--strategy",
              "scale", "--factor", "4"] + nowhere, add, lesion.run)
    with pytest.raises(ValueError, match="Did you mean 'mlp_in'"):
        _run(["--out", str(tmp_path / "n"), "--truncation", "mlp_inn", "1", "0.25"] + nowhere,
             add, lesion.run)
    with pytest.raises(ValueError, match="--strategy mean lesions units only"):
        _run(["--out", str(tmp_path / "n"), "--weights", str(tmp_path / "core.json"),
              "--strategy", "mean"] + nowhere, add, lesion.run)
    with pytest.raises(ValueError, match=r"is not a layer of the model: it has 2 layers, 0\.\.1"):
        _run(["--out", str(tmp_path / "n"), "--truncation", "mlp_in", "40", "0.1"] + base,
             add, lesion.run)
    assert not (tmp_path / "n").exists()
    with pytest.raises(ValueError, match="--truncation needs MATRIX LAYER RHO"):
        _run(["--out", str(tmp_path / "n"), "--truncation", "mlp_in", "x", "0.1"] + base,
             add, lesion.run)
    with pytest.raises(SystemExit):
        _run(["--out", "o", "--dimension", "1", "3", "--truncation", "q", "1", "0.1"],
             add, lesion.run)
    assert lesion_weights.wants_weights(type("A", (), {"weights": None, "dimension": [1, 2],
                                                       "truncation": None})())
    capsys.readouterr()


def test_random_regions_respect_matrices_of_a_saved_region(tmp_path):
    model = tiny_model("gpt2")
    r = WeightRegion.random(model, 0.1, kinds=["mlp_in"], random_state=0)
    r.save(tmp_path / "r")
    c = random_regions(r, 1, random_state=0)[0]
    assert c.names == r.names == ["layers.0.mlp_in", "layers.1.mlp_in"]


def test_command_matrix_kinds_are_the_library_s():
    """The commands list the matrix kinds without importing the library: the same kinds."""
    from llmfmri.commands._common import MATRIX_KINDS as _KINDS  # what the parsers offer
    from llmfmri.lesions import MATRIX_KINDS

    assert tuple(_KINDS) == tuple(MATRIX_KINDS)


def test_lesion_command_records_itself_for_the_report(tiny_dir, tmp_path, capsys):
    """`llmfmri lesion --weights ...` writes its command line into weight-lesion.json, and
    `llmfmri report` on the folder shows the model, the lesion's label and the command."""
    from llmfmri.cli import main
    from llmfmri.lesions._importance import parameter_importance

    model = tiny_model("llama")
    parameter_importance(model, TEXTS, max_length=16).region("top", 0.05, label="core").save(
        tmp_path / "core")
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TEXTS["a"]))
    out = tmp_path / "w"
    argv = ["-q", "lesion", "--weights", str(tmp_path / "core.json"), "--model", str(tiny_dir),
            "--texts", str(texts), "--tasks", "--n-random", "2", "--out", str(out)]
    assert main(argv) == 0
    saved = json.loads((out / "weight-lesion.json").read_text())
    assert saved["command"].startswith("llmfmri -q lesion --weights")
    assert main(["-q", "report", str(out)]) == 0
    html_text = (out / "report.html").read_text()
    assert "llmfmri -q lesion --weights" in html_text and "Settings of weight-lesion" in html_text
    assert "under the lesion &#x27;core&#x27;" in html_text
    capsys.readouterr()
