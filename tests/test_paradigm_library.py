"""The paradigm library in paradigms/: every file validates and says what it does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmfmri.paradigm import load_paradigm
from llmfmri.cli import main as cli_main
from llmfmri.paradigm._schema import (BLOCK_KEYS, CONDITION_KEYS, CONTEXTS, EVENT_KEYS, FRAMES,
                                      GENERATION_KEYS, RUNS_KEYS, TOP_KEYS)

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "paradigms").glob("*.yaml"))
EXPECTED = {"functional_networks", "language_localizer", "multiple_demand", "theory_of_mind",
            "domains", "template"}


def test_library_has_every_paradigm():
    assert {p.stem for p in LIBRARY} == EXPECTED


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_file_validates_and_summary_matches_its_comments(path):
    p = load_paradigm(path)
    summary = p.summary()
    claims = [line[3:] for line in path.read_text(encoding="utf-8").splitlines()
              if line.startswith("#> ")]
    assert claims, f"{path.name} states no expected summary lines ('#> ...')"
    for claim in claims:
        assert claim in summary.splitlines(), f"{path.name}: {claim!r} not in\n{summary}"
    # every library file documents itself in a header comment
    assert path.read_text(encoding="utf-8").startswith("# ")
    assert p.description


def test_cli_validates_the_whole_library(capsys):
    status = cli_main(["validate", *[str(p) for p in LIBRARY]])
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    assert out.count(": valid") == len(LIBRARY)


def test_functional_networks():
    p = load_paradigm(ROOT / "paradigms" / "functional_networks.yaml")
    tasks = ["political_science", "medical_imaging", "paleontology", "archeology", "pathology",
             "random_strings"]
    assert p.task_conditions == tasks and p.control_conditions == ["control"]
    assert p.design_type == "block" and p.frames == "generated"
    assert p.n_runs >= 3 and p.split == "disjoint"
    for t in tasks:
        assert len(set(p.conditions[t].prompts)) >= 24
    s = p.schedule()
    runs = [set(s.loc[s["run"] == r, "prompt_id"]) for r in range(1, p.n_runs + 1)]
    assert all(not (a & b) for i, a in enumerate(runs) for b in runs[i + 1:])
    for _, part in s.groupby("run"):
        kinds = part.groupby("block")["trial_type"].first().tolist()
        # off/on/off for every task, every cycle
        assert kinds[0::3] == kinds[2::3] == ["control"] * (len(kinds) // 3)
        assert sorted(kinds[1::3]) == sorted(tasks * p.design["cycles"])
        counts = part["trial_type"].value_counts()
        assert all(counts[t] == counts[tasks[0]] for t in tasks)
    strings = p.conditions["random_strings"].prompts
    assert all(" " not in x and 40 <= len(x) <= 60 for x in strings)


def test_language_localizer():
    p = load_paradigm(ROOT / "paradigms" / "language_localizer.yaml")
    assert p.design_type == "event"
    assert p.frames in ("prompt", "pooled_last", "pooled_mean")
    sentences = p.conditions["sentences"].prompts
    nonwords = p.conditions["nonwords"].prompts
    assert len(sentences) >= 120 and len(nonwords) >= 120
    assert all(len(x.split()) == 12 for x in sentences + nonwords)
    vocabulary = {w.lower() for x in sentences for w in re.findall(r"[A-Za-z']+", x)}
    made_up = {w.lower() for x in nonwords for w in x.split()}
    assert not vocabulary & made_up
    assert all(re.fullmatch(r"[a-z]+", w) for w in made_up)


def test_multiple_demand_answers_are_correct():
    p = load_paradigm(ROOT / "paradigms" / "multiple_demand.yaml")
    assert set(p.conditions) == {"hard", "easy"}
    for cond in p.conditions.values():
        assert len(cond.prompts) >= 40
        for prompt, answer in zip(cond.prompts, cond.answers):
            expr = prompt.rstrip("= ")
            assert re.fullmatch(r"[\d +-]+", expr)
            assert int(answer) == eval(expr)  # noqa: S307 - digits and +/- only, checked above
    numbers = {c: [[int(n) for n in re.findall(r"\d+", x)] for x in p.conditions[c].prompts]
               for c in ("easy", "hard")}
    assert all(max(ns) < 10 for ns in numbers["easy"])
    assert all(min(ns) >= 10 for ns in numbers["hard"])


def test_theory_of_mind_stories():
    p = load_paradigm(ROOT / "paradigms" / "theory_of_mind.yaml")
    assert set(p.conditions) == {"false_belief", "false_photo"}
    for cond in p.conditions.values():
        assert len(cond.prompts) >= 10
        assert sorted(set(cond.answers)) == ["False", "True"]
        assert cond.answers.count("True") == cond.answers.count("False")
        assert all("True or false:" in x and x.endswith("Answer:") for x in cond.prompts)


def test_domains_hold_out_passages():
    p = load_paradigm(ROOT / "paradigms" / "domains.yaml")
    assert len(p.conditions) >= 3 and p.frames == "prompt"
    assert p.n_runs >= 2 and p.split == "disjoint" and p.generation.max_new_tokens == 0
    assert "\n    " in p.conditions["code"].prompts[0]  # code keeps its indentation


def test_template_shows_every_option():
    text = (ROOT / "paradigms" / "template.yaml").read_text(encoding="utf-8")
    keys = set(TOP_KEYS + CONDITION_KEYS + BLOCK_KEYS + EVENT_KEYS + RUNS_KEYS + GENERATION_KEYS)
    missing = sorted(k for k in keys if not re.search(rf"\b{k}:", text))
    assert not missing
    values = set(FRAMES + CONTEXTS) | {"block", "event", "disjoint", "reuse", "fixed", "shuffled",
                                       "task", "control"}
    assert not sorted(v for v in values if not re.search(rf"\b{v}\b", text))
