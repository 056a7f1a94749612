"""Lesion controls, behaviour, GLM lesion contrasts, dissociation tables and the localizer study."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from _testing import make_paradigm
from llmfmri.exceptions import DataError
from llmfmri.glm import UnitMap, summarize_prompts
from llmfmri.lesions import (accuracy_table, compare_to_controls, dissociation_table,
                             least_selective, lesion, lesion_contrast, localizer_map,
                             localizer_study, match_answer, perplexity_table, random_controls,
                             score_answers, score_recording, score_texts, unit_magnitude,
                             wilson_interval)
from llmfmri.networks import Network, top_k
from llmfmri.paradigm import load_paradigm
from llmfmri.recording import record
from llmfmri.units import UnitSpace

SPACE = UnitSpace({f"layers.{i}.resid_post": 40 for i in range(3)})


def _net(cols, label="net"):
    mask = np.zeros(SPACE.n_units, dtype=bool)
    mask[cols] = True
    return Network(mask, SPACE, label=label)


# ---------------------------------------------------------------------------- controls
def test_random_controls_have_exactly_the_per_layer_counts():
    net = _net([0, 1, 2, 3, 41, 42, 99], "lang")
    controls = random_controls(net, 8, random_state=0)
    want = net.layer_profile()["n_units"].tolist()
    assert want == [4, 2, 1]
    for c in controls:
        assert c.layer_profile()["n_units"].tolist() == want
        assert not (c.mask & net.mask).any()  # drawn outside the network
        assert c.rule == "random" and c.label.endswith("(lang)")
    assert len({tuple(c.columns) for c in controls}) == 8  # different draws
    again = random_controls(net, 8, random_state=0)
    assert [tuple(c.columns) for c in again] == [tuple(c.columns) for c in controls]
    inside = random_controls(net, 3, exclude=False, random_state=1)
    assert all(c.layer_profile()["n_units"].tolist() == want for c in inside)
    avoid = np.r_[np.arange(8, 40), np.arange(45, 80)]  # leaves 4 + 3 (+ 39 in site 2) units
    for c in random_controls(net, 4, avoid=avoid, random_state=2):
        assert c.layer_profile()["n_units"].tolist() == want
        assert not np.isin(c.columns, avoid).any() and not (c.mask & net.mask).any()
    with pytest.raises(DataError, match="only 0 other units"):
        random_controls(net, 1, avoid=np.arange(4, 80))


def test_magnitude_matched_controls_stay_in_their_magnitude_bins():
    rng = np.random.default_rng(0)
    mag = rng.gamma(2.0, size=SPACE.n_units)
    sites = SPACE.table["site"].to_numpy()
    # the network takes the 3 largest units of site 0 and the 2 smallest of site 2
    s0, s2 = np.flatnonzero(sites == sites[0]), np.flatnonzero(sites == sites[-1])
    cols = np.r_[s0[np.argsort(mag[s0])[-3:]], s2[np.argsort(mag[s2])[:2]]]
    net = _net(cols)
    controls = random_controls(net, 5, magnitude=UnitMap(mag, SPACE, output_type="effect_size"),
                               n_bins=4, random_state=0)
    for c in controls:
        assert c.layer_profile()["n_units"].tolist() == [3, 0, 2]
        top0 = np.sort(mag[s0])[-10:]  # the top quarter of site 0 (40 units / 4 bins)
        assert np.isin(mag[c.columns[:3]], top0).all()
        assert (mag[c.columns[3:]] <= np.sort(mag[s2])[9]).all()
    with pytest.warns(UserWarning, match="neighbouring magnitude bin"):
        random_controls(net, 2, magnitude=mag, n_bins=40, random_state=0)
    with pytest.raises(DataError, match="one value per unit"):
        random_controls(net, 2, magnitude=mag[:5])


def test_control_errors():
    with pytest.raises(DataError, match="is empty"):
        random_controls(_net([]), 3)
    with pytest.raises(DataError, match="only 0 other units"):
        random_controls(_net(np.arange(40)), 1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        random_controls(_net([1]), 0)
    with pytest.raises(TypeError, match="must be a Network"):
        random_controls([1, 2], 3)


def test_least_selective_units():
    stat = UnitMap(np.arange(SPACE.n_units, dtype=float)[::-1], SPACE, output_type="stat",
                   stat_type="t", contrast="a - b")
    top = top_k(stat, k=6)
    bottom = least_selective(stat, like=top)
    assert bottom.n_units == 6 and set(bottom.columns) == set(range(114, 120))
    per_site = least_selective(stat, like=_net([0, 1, 45]), match="layer")
    assert per_site.layer_profile()["n_units"].tolist() == [2, 1, 0]
    assert set(per_site.columns) == {38, 39, 79}
    assert least_selective(stat, fraction=0.05).n_units == 6
    with pytest.raises(ValueError, match="needs like"):
        least_selective(stat, match="layer")


def test_compare_to_controls_empirical_p():
    res = compare_to_controls(5.0, [1.0, 2.0, 6.0, 0.5])
    assert res["p_empirical"] == pytest.approx(2 / 5)
    assert res["control_mean"] == pytest.approx(2.375)
    assert compare_to_controls(5.0, [1.0, 2.0])["p_empirical"] == pytest.approx(1 / 3)
    assert compare_to_controls(-0.3, [-0.1, 0.0, -0.4], alternative="less")["p_empirical"] == \
        pytest.approx(2 / 4)
    assert compare_to_controls(-3, [1, -2, 4], alternative="two-sided")["p_empirical"] == 0.5
    with pytest.raises(ValueError, match="Allowed values for alternative"):
        compare_to_controls(1, [0], alternative="bigger")


# --------------------------------------------------------------------------- behaviour
def test_answers_and_intervals():
    assert match_answer(" Paris.", "Paris") and match_answer("TRUE", "True")
    assert not match_answer(" 125", "12") and not match_answer(" Par", "Paris")
    assert match_answer(" 12\n", "12") and match_answer(" ８", "8")  # NFKC digits
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # Wilson 1927, z = 1.96
    assert wilson_interval(0, 20)[0] == 0.0
    scores = pd.DataFrame({"trial_type": ["a"] * 4 + ["b"] * 2,
                           "correct": [1, 1, 0, np.nan, 0, 0],
                           "nll": [2.0, 4.0, 6.0, 8.0, 1.0, 1.0],
                           "n_tokens": [2, 2, 2, 2, 1, 1]})
    acc = accuracy_table(scores)
    assert acc["n_items"].tolist() == [3, 2] and acc["accuracy"].tolist() == [2 / 3, 0.0]
    ppl = perplexity_table(scores, n_boot=200)
    assert ppl["perplexity"].tolist() == pytest.approx([np.exp(20 / 8), np.e])
    row = ppl.iloc[0]
    assert row["ci_low"] <= row["perplexity"] <= row["ci_high"]
    assert row["ci_method"] == "bootstrap over items"


def test_score_recording_reads_responses_and_logprobs_without_torch(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    par = load_paradigm({
        "schema_version": 1, "name": "qa",
        "conditions": {"control": {"role": "control", "prompts": ["Tea is", "Rain is"]},
                       "maths": {"role": "task", "prompts": ["2 + 2 =", "3 + 5 ="],
                                 "answers": ["4", "8"]}},
        "design": {"type": "event"}, "generation": {"max_new_tokens": 3}, "frames": "both"})
    rec = record(model, par, sites="embed", units=[0], out=tmp_path / "qa", progress=False)
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ImportError('no ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from llmfmri.recording import load_recording\n"
        "from llmfmri.lesions import score_recording\n"
        f"t = score_recording(load_recording({str(rec.path)!r}))\n"
        "print(t.to_json(orient='records'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    table = pd.DataFrame(json.loads(out.stdout))
    assert len(table) == 4
    ev = rec.events(1)
    for row in table.itertuples():
        g = ev[ev["prompt_id"] == row.prompt_id]
        assert row.response == g["response"].iloc[0]
        lp = pd.to_numeric(g["logprob"], errors="coerce").dropna()
        assert row.nll == pytest.approx(-lp.sum()) and row.n_tokens == lp.size
        if row.trial_type == "maths":
            assert row.correct == float(match_answer(row.response, row.answer))
        else:
            assert pd.isna(row.answer) and np.isnan(row.correct)
    gen = score_recording(rec, frame_kind="generated")
    assert (gen["n_tokens"] == 3).all()
    direct = score_answers(model, par)
    assert direct["response"].tolist() == score_recording(rec)["response"].tolist()


def test_gold_answer_log_probabilities_and_forced_choice(tiny_models):
    import torch

    from llmfmri.lesions import score_gold

    model = tiny_models["llama"]
    par = load_paradigm({
        "schema_version": 1, "name": "tf",
        "conditions": {"a": {"role": "task", "prompts": ["Is it so? Answer:", "Yes or no:",
                                                         "Say it:"],
                             "answers": ["True", "False", "True"]}},
        "design": {"type": "event"}, "generation": {"max_new_tokens": 2}})
    table = score_gold(model, par, batch_size=2)
    tok = model.tokenizer
    for row in table.itertuples():
        prompt = par.conditions["a"].prompts[int(row.prompt_id.split("-")[1]) - 1]
        nll = {}
        for cand in ("True", "False"):
            p, c = tok(prompt)["input_ids"], tok(" " + cand, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p + c])
            with torch.no_grad():
                lp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
            nll[cand] = -sum(lp[len(p) - 1 + i, t].item() for i, t in enumerate(c))
        assert row.nll == pytest.approx(nll[row.answer], rel=1e-5)
        assert row.choice == min(nll, key=nll.get)
        assert row.correct == float(row.choice == row.answer)
    assert score_gold(model, par, choices=None)["correct"].isna().all()
    with pytest.raises(DataError, match="do not include the gold answers"):
        score_gold(model, par, choices=["True", "Maybe"])


def test_text_nll_with_a_sliding_window(tiny_models):
    import torch

    model = tiny_models["llama"]
    text = "The quick brown fox jumps over the lazy dog. " * 8  # 360 bytes > 256 positions
    tok = model.tokenizer
    ids = tok(text)["input_ids"]
    short = text[:100]
    # a text that fits: the NLL of a plain forward pass
    t = score_texts(model, {"s": [short]})
    sid = torch.tensor([tok(short)["input_ids"]])
    with torch.no_grad():
        lp = torch.log_softmax(model(sid).logits[0, :-1].double(), -1)
    ref = -lp.gather(-1, sid[0, 1:, None]).sum().item()
    assert t["nll"].iloc[0] == pytest.approx(ref, rel=1e-5)
    assert t["n_tokens"].iloc[0] == sid.shape[1] - 1
    # a long one: every token after the first scored once, windows within the context
    long = score_texts(model, {"long": [text]}, max_length=128, stride=64)
    assert long["n_tokens"].iloc[0] == len(ids) - 1
    with pytest.raises(ValueError, match="exceeds the model's context limit 256"):
        score_texts(model, [text], max_length=512)
    # batching does not change the result, a lesion does
    many = score_texts(model, {"a": [short, text[:50], text[:200]]}, batch_size=1)
    batched = score_texts(model, {"a": [short, text[:50], text[:200]]}, batch_size=3)
    np.testing.assert_allclose(many["nll"], batched["nll"], rtol=1e-4)
    with lesion(model, {"layers.0.resid_post": list(range(8))}):
        hurt = score_texts(model, {"a": [short, text[:50], text[:200]]})
    assert not np.allclose(hurt["nll"], many["nll"])


def test_load_texts(tmp_path):
    from llmfmri.lesions import load_texts

    f = tmp_path / "plain.txt"
    f.write_text("# a comment\nFirst text.\n\nSecond text.\n")
    assert load_texts(f) == {"plain": ["First text.", "Second text."]}
    assert load_texts(f, split=None)["plain"][0].startswith("# a comment")
    assert set(load_texts("domains")) == {"science", "fiction", "legal", "code"}
    with pytest.raises(FileNotFoundError):
        load_texts(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="no condition 'sience'.*Did you mean 'science'"):
        load_texts("domains", conditions=["sience"])


# ------------------------------------------------------------------- lesion contrasts
def _planted(seed=0, n_prompts=30, frames=3, n_units=30, effect=1.0):
    rng = np.random.default_rng(seed)
    rows = []
    for c in ("a", "b"):
        for p in range(n_prompts):
            rows += [{"trial_type": c, "prompt_id": f"{c}-{p}"}] * frames
    ev = pd.DataFrame(rows)
    ev.insert(0, "onset", np.arange(len(ev), dtype=float))
    ev.insert(1, "duration", 1.0)
    prompt_level = np.repeat(rng.standard_normal((2 * n_prompts, n_units)), frames, axis=0)
    intact = prompt_level + 0.5 * rng.standard_normal((len(ev), n_units))
    lesioned = intact + 0.3 * rng.standard_normal(intact.shape)
    in_a = (ev["trial_type"] == "a").to_numpy()
    lesioned[np.ix_(in_a, np.arange(5))] += effect  # condition a only: units 0-4
    lesioned[:, 5:10] -= effect  # both conditions: units 5-9
    return intact, lesioned, ev


def test_lesion_contrast_recovers_a_planted_lesion_effect():
    intact, lesioned, ev = _planted()
    space = UnitSpace({"layers.0.resid_post": 30})
    res = lesion_contrast(intact, lesioned, events=ev, units=space)
    assert res.conditions == ["a", "b"] and len(res.table) == 60
    za, zb = res.map("a").values, res.map("b").values
    inter = res.map("a - b")
    assert inter.inference == "prompt" and res.map("a").dof == 58
    assert (za[:5] > 5).all() and (za[5:10] < -5).all()
    assert (np.abs(zb[:5]) < 3.5).all() and (zb[5:10] < -5).all()
    assert (inter.values[:5] > 5).all() and (np.abs(inter.values[5:]) < 4).all()
    effect = res.map("a", output_type="effect_size").values
    np.testing.assert_allclose(effect[:5], 1.0, atol=0.15)
    summary = res.summary().set_index("contrast")
    assert summary.loc["a", "n_significant"] >= 10 and summary.loc["a - b", "kind"] == \
        "interaction"
    assert summary.loc["b", "n_significant"] >= 5 and summary.loc["b", "n_significant"] <= 7
    excl = res.summary(exclude={"layers.0.resid_post": list(range(5))}).set_index("contrast")
    assert excl.loc["a", "n_units"] == 25
    prof = res.layer_profile("a")
    assert prof["n_significant"].iloc[0] >= 10
    # the paired design: a shuffled lesioned recording (prompts in another order) gives the same
    perm = np.random.default_rng(1).permutation(len(ev))
    same = lesion_contrast(intact, lesioned[perm], events=ev, lesioned_events=ev.iloc[perm]
                           .assign(onset=np.arange(len(ev), dtype=float))
                           .reset_index(drop=True), units=space)
    np.testing.assert_allclose(same.map("a").values, za, rtol=1e-8)


def test_lesion_contrast_on_recordings(tiny_models, tmp_path):
    model = tiny_models["gpt_neox"]
    par = make_paradigm(frames="prompt", max_new_tokens=0, n_runs=2)
    intact = record(model, par, out=tmp_path / "intact", progress=False)
    units = {"layers.0.resid_post": [0, 1, 2, 3]}
    with lesion(model, units):
        les = record(model, par, out=tmp_path / "les", progress=False)
    res = lesion_contrast(intact, les)
    assert res.conditions == ["control", "science"] and len(res.table) == 6
    eff = res.map("control", output_type="effect_size").values
    cols = intact.select(sites="layers.0.resid_post")[:4]
    table, values = summarize_prompts(intact)
    control = (table["trial_type"] == "control").to_numpy()
    np.testing.assert_allclose(eff[cols], -values[control][:, cols].mean(axis=0), atol=1e-6)
    other = intact.select(sites="layers.0.resid_post")[4:]
    assert (eff[other] == 0).all()  # nothing else changes in the lesioned layer's output
    assert (res.summary()["n_unchanged"] == 28).all()
    with pytest.raises(DataError, match="different units"):
        small = record(model, par, sites="embed", out=tmp_path / "embed", progress=False)
        lesion_contrast(intact, small)


def test_dissociation_table_finds_a_planted_double_dissociation():
    rng = np.random.default_rng(0)
    rows = []
    for les, own in (("A", "a"), ("B", "b")):
        for draw in ["lesion"] + [f"random-{k}" for k in range(9)]:
            for task in ("a", "b"):
                for item in range(25):
                    hit = 1.0 if (draw == "lesion" and task == own) else 0.0
                    rows.append({"lesion": les, "draw": draw, "task": task, "item": item,
                                 "deficit": hit + 0.05 * rng.standard_normal()})
    scores = pd.DataFrame(rows)
    res = dissociation_table(scores, own={"A": "a", "B": "b"}, n_boot=200)
    cells = res.cells.set_index(["lesion", "task"])
    assert cells.loc[("A", "a"), "deficit"] == pytest.approx(1.0, abs=0.05)
    assert cells.loc[("A", "a"), "p_empirical"] == pytest.approx(0.1)  # 1 / (1 + 9)
    assert abs(cells.loc[("A", "b"), "specific_deficit"]) < 0.05
    assert cells.loc[("A", "a"), "ci_low"] < 1.0 < cells.loc[("A", "a"), "ci_high"] + 0.05
    con = res.contrasts.set_index("lesion")
    assert con.loc["A", "difference"] == pytest.approx(1.0, abs=0.05) and con.loc["A", "p"] < 1e-6
    assert res.double["interaction"].iloc[0] == pytest.approx(2.0, abs=0.1)
    assert res.double["p"].iloc[0] < 1e-6
    assert res.matrix().shape == (2, 2)
    with pytest.raises(DataError, match="no column 'deficit'"):
        dissociation_table(scores.rename(columns={"deficit": "d"}))


# ----------------------------------------------------------------- the localizer study
def test_localizer_map_is_welchs_t_on_absolute_activations(tiny_models, tmp_path):
    from scipy import stats

    model = tiny_models["llama"]
    par = make_paradigm(frames="pooled_last", max_new_tokens=0, n_runs=2)
    rec = record(model, par, out=tmp_path / "loc", progress=False)
    t = localizer_map(rec, "science - control")
    assert t.inference == "prompt" and t.stat_type == "t"
    ev = pd.concat([rec.events(r) for r in rec.runs])
    X = np.vstack([rec.data(r) for r in rec.runs])
    ref = stats.ttest_ind(np.abs(X[(ev["trial_type"] == "science").to_numpy()]),
                          np.abs(X[(ev["trial_type"] == "control").to_numpy()]),
                          equal_var=False).statistic
    np.testing.assert_allclose(t.values, ref, rtol=1e-6)
    prompt = localizer_map(rec, "science - control", statistic="prompt")
    assert prompt.inference == "prompt"
    with pytest.raises(ValueError, match="'a - b'"):
        localizer_map(rec, "science")
    mag = unit_magnitude(rec)
    np.testing.assert_allclose(mag.values, np.abs(X).mean(axis=0), rtol=1e-6)


def test_localizer_study_end_to_end(tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    par = make_paradigm(frames="pooled_last", max_new_tokens=0, n_runs=2)
    texts = {"plain": ["The cat sat on the mat.", "Rain fell all day."],
             "strings": ["qz xv kk", "pp lm rt"]}
    tasks = [load_paradigm({
        "schema_version": 1, "name": "qa",
        "conditions": {"maths": {"role": "task", "prompts": ["2 + 2 =", "3 + 5 =", "1 + 1 ="],
                                 "answers": ["4", "8", "2"]}},
        "design": {"type": "event"}, "generation": {"max_new_tokens": 2},
        "frames": "pooled_last"})]
    study = localizer_study(model, localizer=par, contrast="science - control", fraction=0.05,
                            n_random=3, n_magnitude=2, texts=texts, tasks=tasks,
                            out=tmp_path / "out", random_state=0)
    net = study.network
    assert net.n_units == round(0.05 * net.n_total)
    ctab = study.controls_table()
    assert ctab["same_per_site_counts"][ctab["kind"] != "bottom"].all()
    assert (ctab["overlap"][ctab["kind"].isin(["random", "magnitude"])] == 0).all()
    assert set(study.items["condition"]) == {"intact", "lesion", "random", "magnitude", "bottom"}
    summ = study.summary
    assert set(summ["control"]) == {"random", "magnitude", "bottom"}
    row = summ[(summ["set"] == "plain") & (summ["control"] == "random")].iloc[0]
    assert row["n_controls"] == 3 and 0.25 <= row["p_empirical"] <= 1
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "lesion-summary.tsv" in files and "summary.json" in files
    assert any(f.endswith("_mask.nii.gz") for f in files)
    info = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert info["settings"]["n_units"] == net.n_units
    with pytest.raises(FileExistsError, match="already exists"):
        localizer_study(model, localizer=par, contrast="science - control", texts=texts,
                        tasks=[], out=tmp_path / "out")
    with pytest.raises(ValueError, match="factor= goes with strategy='scale'"):
        localizer_study(model, localizer=par, strategy="scale")


def test_lesion_command(tiny_models, tmp_path, monkeypatch, capsys):
    import llmfmri.models
    from llmfmri.commands import lesion as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    parser.add_argument("-v", dest="verbose", action="count", default=0)
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises((FileNotFoundError, ValueError)):
        command.run(parser.parse_args(["--out", str(tmp_path / "o"), "--localizer", missing]))
    with pytest.raises(FileNotFoundError):
        command.run(parser.parse_args(["--out", str(tmp_path / "o"), "--texts",
                                       str(tmp_path / "none.txt")]))
    loc = tmp_path / "loc.yaml"
    make_paradigm(frames="pooled_last", max_new_tokens=0, n_runs=2).save(loc)
    txt = tmp_path / "plain.txt"
    txt.write_text("The cat sat on the mat.\nRain fell all day.\n")
    monkeypatch.setattr(llmfmri.models, "load_model", lambda *a, **k: tiny_models["gpt2"])
    args = parser.parse_args(["--out", str(tmp_path / "o"), "--localizer", str(loc),
                              "--contrast", "science - control", "--fraction", "0.05",
                              "--n-random", "2", "--texts", str(txt), "--tasks"])
    assert command.run(args) == 0
    out = capsys.readouterr().out
    assert "plain" in out and "random" in out and (tmp_path / "o" / "summary.json").exists()
    # through the entry point, as registered (exit 2 for bad input, before loading a model)
    import llmfmri.cli

    assert "lesion" in llmfmri.cli.COMMANDS
    assert llmfmri.cli.main(["-q", "lesion", "--localizer", missing, "--out",
                             str(tmp_path / "o2")]) == 2
    assert "missing" in capsys.readouterr().err
    assert llmfmri.cli.main(["-q", "lesion", "--out", str(tmp_path / "o"), "--localizer",
                             str(loc), "--tasks"]) == 2  # outputs exist, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert llmfmri.cli.main(["lesion", "--help"]) == 0
    assert "--n-random" in capsys.readouterr().out
