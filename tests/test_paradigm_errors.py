"""Malformed paradigms: each fault gives its own message with file, line and field path.

Every case starts from ``BASE`` (a valid file; line numbers in the comments),
applies one edit, and checks the message. None may end in a traceback from
inside the library: the CLI test runs them all through ``llmfmri validate``.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from llmfmri.paradigm import ParadigmError, load_paradigm
from llmfmri.cli import main as cli_main

BASE = """\
schema_version: 1
name: demo
conditions:
  control:
    role: control
    prompts:
      - Tea is
      - Rain is
      - Bread is
      - Snow is
  maths:
    role: task
    prompts:
      - 2 + 2 =
      - 3 + 5 =
design:
  type: block
  sequence: [control, maths, control]
  prompts_per_block: 1
runs: {n: 2, split: disjoint}
generation:
  max_new_tokens: 4
frames: generated
seed: 0
"""
# line numbers:  1 schema_version, 2 name, 3 conditions, 4 control, 5 role, 6 prompts, 7-10 items,
# 11 maths, 12 role, 13 prompts, 14-15 items, 16 design, 17 type, 18 sequence,
# 19 prompts_per_block, 20 runs, 21 generation, 22 max_new_tokens, 23 frames, 24 seed


def edit(*pairs, base=BASE):
    text = base
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


TSV_PROMPTS = edit(("    prompts:\n      - 2 + 2 =\n      - 3 + 5 =\n",
                    "    prompts_file: maths.tsv\n"))

# (id, yaml text, extra files {name: bytes}, line, field, message regex)
FAULTS = [
    ("yaml_syntax", edit(("[control, maths, control]", "[control, maths, control")), {},
     18, "design.sequence", r"YAML syntax error: expected .,. or .\]., but got .:. at line 19 "
                            r"\(while parsing a flow sequence that starts here; is a closing "
                            r"bracket or quote missing\?\)"),
    ("tab_indent", edit(("  type: block", "\ttype: block")), {},
     17, "design.type", r"YAML syntax error.*tabs"),
    ("unknown_top_key", edit(("seed: 0", "sed: 0")), {},
     24, "sed", r"unknown key 'sed'\. Allowed keys here: .*Did you mean 'seed'\?"),
    ("misspelt_condition_key",
     edit(("    role: task\n    prompts:", "    role: task\n    promts:")), {}, 13,
     "conditions.maths.promts", r"unknown key 'promts'.*Did you mean 'prompts'\?"),
    ("missing_name", edit(("name: demo\n", "")), {},
     1, "name", r"missing required key 'name'"),
    ("schema_version_2", edit(("schema_version: 1", "schema_version: 2")), {},
     1, "schema_version", r"reads schema_version 1, found 2"),
    ("bad_name", edit(("name: demo", "name: demo_task")), {},
     2, "name", r"expected a BIDS label .*found the string 'demo_task'\. "
                r"Did you mean 'demotask'\?"),
    ("bad_role", edit(("    role: task", "    role: tsak")), {},
     12, "conditions.maths.role", r"expected one of 'task', 'control', found the string 'tsak'\. "
                                  r"Did you mean 'task'\?"),
    ("empty_prompt", edit(("      - Rain is", "      - ''")), {},
     8, "conditions.control.prompts[1]", r"empty prompt"),
    ("empty_item", edit(("      - Rain is", "      -")), {},
     8, "conditions.control.prompts[1]", r"empty prompt"),
    ("duplicate_prompt", edit(("      - Snow is", "      - Tea   is")), {},
     10, "conditions.control.prompts[3]",
     r"duplicate prompt 'Tea is': the same text is already given at conditions\.control\.prompts"
     r"\[0\], \S*duplicate_prompt\.yaml:7"),
    ("duplicate_across_conditions", edit(("      - 3 + 5 =", "      - Bread is")), {},
     15, "conditions.maths.prompts[1]", r"duplicate prompt 'Bread is'"),
    ("undefined_condition", edit(("[control, maths, control]", "[control, maths, contrl]")), {},
     18, "design.sequence[2]", r"undefined condition 'contrl'\. Defined conditions: control, "
                               r"maths.*Did you mean 'control'\?"),
    ("too_many_runs", edit(("runs: {n: 2, split: disjoint}", "runs: {n: 3, split: disjoint}")), {},
     20, "runs.n", r"3 runs with runs\.split 'disjoint' need 3 × 2 = 6 distinct 'control' prompts "
                   r"\(2 per run: 2 blocks × 1 prompt\), but conditions\.control has 4 \(line 6\)"
                   r".*runs\.split: reuse"),
    ("missing_prompts_file", edit(("    prompts:\n      - 2 + 2 =\n      - 3 + 5 =\n",
                                   "    prompts_file: stimuli/math.txt\n")),
     {"stimuli/maths.txt": b"1 + 1 =\n2 + 1 =\n"},
     13, "conditions.maths.prompts_file",
     r"file not found: 'stimuli/math\.txt' .*Did you mean 'maths\.txt'\?"),
    ("non_utf8_prompts_file", edit(("    prompts:\n      - 2 + 2 =\n      - 3 + 5 =\n",
                                    "    prompts_file: maths.txt\n")),
     {"maths.txt": "1 + 1 =\ncaf\u00e9 + 1 =\n".encode("latin-1")},
     13, "conditions.maths.prompts_file",
     r"expected UTF-8 text in '.*maths\.txt', found byte 0xe9 at line 2, column 4"),
    ("non_utf8_yaml", edit(("name: demo", "name: d\u00e9mo")).encode("latin-1"), {},
     2, "name", r"expected UTF-8 text .*byte 0xe9 at line 2, column 8"),
    ("duplicate_yaml_key", edit(("seed: 0", "seed: 0\nseed: 1")), {},
     25, "seed", r"duplicate key 'seed': it is already given at line 24"),
    ("prompts_and_file", edit(("    role: task\n", "    role: task\n    prompts_file: x.txt\n")),
     {}, 13, "conditions.maths.prompts_file", r"give either prompts \(a list\) or prompts_file"),
    ("answers_mismatch", edit(("      - 3 + 5 =\n", "      - 3 + 5 =\n    answers: ['4']\n")), {},
     16, "conditions.maths.answers", r"expected 2 answers \(one per prompt, in order\), found 1"),
    ("wrong_type", edit(("max_new_tokens: 4", "max_new_tokens: four")), {},
     22, "generation.max_new_tokens", r"expected a whole number >= 0, found the string 'four'"),
    ("quoted_number", edit(("max_new_tokens: 4", "max_new_tokens: '4'")), {},
     22, "generation.max_new_tokens", r"found the string '4' \(write it without quotes\)"),
    ("temperature_without_sampling",
     edit(("max_new_tokens: 4", "max_new_tokens: 4\n  temperature: 0.7")), {}, 23,
     "generation.temperature", r"only used when sampling, but do_sample is false"),
    ("bad_frames", edit(("frames: generated", "frames: generatd")), {},
     23, "frames", r"expected one of 'generated', 'prompt', 'both', 'pooled_last', 'pooled_mean', "
                   r"found the string 'generatd'\. Did you mean 'generated'\?"),
    ("bad_context", edit(("seed: 0", "context: continous\nseed: 0")), {},
     24, "context", r"Did you mean 'continuous'\?"),
    ("unused_condition",
     edit(("design:", "  extra:\n    role: task\n    prompts: [Hi there]\ndesign:")), {}, 16,
     "conditions.extra", r"condition 'extra' is defined but never presented"),
    ("unquoted_colon", edit(("      - 3 + 5 =", "      - Question: what is 3 + 5?")), {},
     15, "conditions.maths.prompts[1]", r"quote a prompt that contains ': '"),
    ("bad_design_type", edit(("type: block", "type: blok")), {},
     17, "design.type", r"Did you mean 'block'\?"),
    ("event_key_in_block",
     edit(("  prompts_per_block: 1", "  prompts_per_block: 1\n  max_consecutive: 2")), {}, 20,
     "design.max_consecutive", r"unknown key 'max_consecutive' \('max_consecutive' belongs "
                               r"to event designs\)"),
    ("tasks_without_placeholder",
     edit(("  prompts_per_block: 1", "  prompts_per_block: 1\n  tasks: [maths]")), {}, 20,
     "design.tasks", r"design\.tasks is only used when design\.sequence contains 'task'"),
    ("ppb_missing_condition", edit(("prompts_per_block: 1", "prompts_per_block: {maths: 1}")), {},
     19, "design.prompts_per_block", r"no value for 'control'"),
    ("ppb_misspelt_condition",
     edit(("prompts_per_block: 1", "prompts_per_block: {maths: 1, contro: 1}")), {}, 19,
     "design.prompts_per_block.contro", r"'contro' is not a defined condition.*Did you mean "
                                        r"'control'\?"),
    ("no_generation_for_generated_frames", edit(("max_new_tokens: 4", "max_new_tokens: 0")), {},
     22, "generation.max_new_tokens", r"frames 'generated' needs generated tokens"),
    ("no_task_condition", edit(("    role: task", "    role: control")), {},
     3, "conditions", r"no condition has role 'task'"),
    ("reserved_condition_name",
     edit(("  maths:", "  task:"), ("[control, maths, control]", "[control, task, control]")), {},
     11, "conditions.task", r"'task' is reserved"),
    ("invalid_condition_name", edit(("  maths:", "  2maths:")), {},
     11, "conditions.2maths", r"condition names must start with a letter"),
    ("negative_seed", edit(("seed: 0", "seed: -1")), {},
     24, "seed", r"expected a whole number >= 0, found -1"),
    ("zero_runs", edit(("runs: {n: 2, split: disjoint}", "runs: 0")), {},
     20, "runs", r"expected a number of runs >= 1, found 0"),
    ("misspelt_runs_key", edit(("runs: {n: 2, split: disjoint}", "runs: {n: 2, splt: reuse}")), {},
     20, "runs.splt", r"Did you mean 'split'\?"),
    ("reuse_too_few", edit(("runs: {n: 2, split: disjoint}", "runs: {n: 2, split: reuse}"),
                           ("prompts_per_block: 1", "prompts_per_block: 3")), {},
     19, "design.prompts_per_block", r"each run presents 6 'control' prompts \(2 blocks × 3 "
                                     r"prompts\), but conditions\.control has 4 \(line 6\); a run "
                                     r"never repeats a prompt"),
    ("top_p_range",
     edit(("max_new_tokens: 4", "max_new_tokens: 4\n  do_sample: true\n  top_p: 1.5")), {}, 24,
     "generation.top_p", r"expected a number in \(0, 1\], found 1\.5"),
    ("empty_stop", edit(("max_new_tokens: 4", "max_new_tokens: 4\n  stop: ['']")), {},
     23, "generation.stop[0]", r"expected a non-empty stop string"),
    ("empty_prompts_file", edit(("    prompts:\n      - 2 + 2 =\n      - 3 + 5 =\n",
                                 "    prompts_file: maths.txt\n")),
     {"maths.txt": b"# only a comment\n\n"}, 13, "conditions.maths.prompts_file",
     r"holds no prompts"),
    ("empty_file", "", {}, 1, "", r"the file is empty"),
    ("top_level_list", "- a\n- b\n", {}, 1, "",
     r"expected a mapping with schema_version, name, conditions and design at the top of the file, "
     r"found a list of 2 item\(s\)"),
    ("missing_design", edit(("design:\n  type: block\n  sequence: [control, maths, control]\n"
                             "  prompts_per_block: 1\n", "")), {},
     1, "design", r"missing required key 'design'"),
    ("impossible_max_consecutive",
     edit(("design:\n  type: block\n  sequence: [control, maths, control]\n"
           "  prompts_per_block: 1\n", "design:\n  type: event\n  max_consecutive: 1\n"),
          ("runs: {n: 2, split: disjoint}", "runs: 1")), {},
     18, "design.max_consecutive", r"cannot order 4 'control' trials among 6 per run with at "
                                   r"most 1 in a row"),
    ("tsv_bad_header", TSV_PROMPTS, {"maths.tsv": b"prompt\tanwser\n1 + 1 =\t2\n"},
     1, "conditions.maths.prompts_file", r"expected a header of tab-separated columns 'prompt' "
                                         r"and optionally 'answer', found \['prompt', 'anwser'\]\. "
                                         r"Did you mean 'answer'\?"),
    ("tsv_bad_row", TSV_PROMPTS, {"maths.tsv": b"prompt\tanswer\n1 + 1 =\t2\n2 + 2 =\n"},
     3, "conditions.maths.prompts_file", r"expected 2 tab-separated columns \(prompt, answer\), "
                                         r"found 1"),
]


def _write(tmp_path, case_id, text, extra):
    for name, data in extra.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    path = tmp_path / f"{case_id}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_base_is_valid(tmp_path):
    p = load_paradigm(_write(tmp_path, "base", BASE, {}))
    assert p.n_runs == 2 and p.design_type == "block"


def test_at_least_twenty_distinct_faults():
    assert len({case[0] for case in FAULTS}) == len(FAULTS) >= 20


@pytest.mark.parametrize("case_id,text,extra,line,field,message", FAULTS,
                         ids=[case[0] for case in FAULTS])
def test_fault_message(tmp_path, case_id, text, extra, line, field, message):
    path = _write(tmp_path, case_id, text, extra)
    with pytest.raises(ParadigmError) as info:
        load_paradigm(str(path))
    err = info.value
    text = str(err)
    problem = err.problems[0]
    # file, line and field path, in the house format "file:line: field: message"
    if case_id.startswith("tsv_"):
        assert problem.file.endswith("maths.tsv")
    else:
        assert problem.file == str(path)
    assert problem.line == line, text
    assert problem.field == field, text
    where = f"{problem.file}:{line}: " + (f"{field}: " if field else "")
    assert where in text
    assert re.search(message, text, flags=re.S), text
    assert "Traceback" not in text


def test_several_problems_reported_together(tmp_path):
    text = edit(("role: control", "role: contol"), ("seed: 0", "sed: 0"),
                ("frames: generated", "frames: tokens"))
    path = _write(tmp_path, "many", text, {})
    with pytest.raises(ParadigmError, match=r"3 problems in .*many\.yaml") as info:
        load_paradigm(path)
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines) == [5, 23, 24]


def test_dict_source_has_field_but_no_line():
    with pytest.raises(ParadigmError,
                       match=r"^<dict>: conditions\.a\.role: expected one of") as info:
        load_paradigm({"schema_version": 1, "name": "x", "design": {"type": "event"},
                       "conditions": {"a": {"role": "tsk", "prompts": ["p"]}}})
    assert info.value.line is None and info.value.field == "conditions.a.role"


def test_missing_paradigm_file(tmp_path):
    (tmp_path / "demo.yaml").write_text(BASE)
    with pytest.raises(ParadigmError,
                       match=r"paradigm file not found .*Did you mean 'demo\.yaml'\?"):
        load_paradigm(tmp_path / "dmeo.yaml")


def test_unknown_library_name():
    with pytest.raises(ParadigmError, match=r"no paradigm named 'functional_netwrks' in the library"
                                            r".*Did you mean 'functional_networks'\?"):
        load_paradigm("functional_netwrks")


def test_error_is_a_value_error_and_pickles(tmp_path):
    import pickle

    path = _write(tmp_path, "bad", edit(("seed: 0", "sed: 0")), {})
    with pytest.raises(ValueError) as info:
        load_paradigm(path)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)


def test_cli_reports_every_fault_without_traceback(tmp_path, capsys):
    paths = []
    for case_id, text, extra, *_ in FAULTS:
        folder = tmp_path / case_id
        folder.mkdir()
        paths.append(str(_write(folder, case_id, text, extra)))
    status = cli_main(["validate", *paths])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    for (case_id, *_rest), path in zip(FAULTS, paths):
        assert case_id + ".yaml" in err


def test_cli_subprocess_exit_code_and_message(tmp_path):
    bad = _write(tmp_path, "bad", edit(("[control, maths, control]", "[control, math, control]")),
                 {})
    good = _write(tmp_path, "good", BASE, {})
    proc = subprocess.run([sys.executable, "-m", "llmfmri.cli", "validate", str(good),
                           str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"{bad}:18: design.sequence[1]: undefined condition 'math'" in proc.stderr
    assert "Did you mean 'maths'?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{good}: valid" in proc.stdout


def test_random_damage_never_escapes_as_another_exception(tmp_path):
    """Seeded mutations of a valid file: each load either works or raises ParadigmError."""
    import random

    rng = random.Random(0)
    lines0 = BASE.splitlines()
    for i in range(300):
        lines = list(lines0)
        j = rng.randrange(len(lines))
        op = rng.randrange(4)
        if op == 0:
            del lines[j]
        elif op == 1:
            lines.insert(j, lines[rng.randrange(len(lines))])
        elif op == 2 and lines[j]:
            k = rng.randrange(len(lines[j]))
            lines[j] = lines[j][:k] + rng.choice(" :-[]{}'\"#\t,0a!&*|>") + lines[j][k + 1:]
        else:
            lines[j] = "  " + lines[j]
        path = tmp_path / f"damaged{i}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            load_paradigm(path).summary()
        except ParadigmError as err:
            assert err.problems and all(p.file for p in err.problems)
