"""The text that ``llmfmri validate`` prints for a valid paradigm."""

from __future__ import annotations

import textwrap

__all__ = ["render_summary"]

_FRAMES = {
    "generated": "each generated token is a frame",
    "prompt": "each prompt token is a frame",
    "both": "each prompt token and each generated token is a frame",
    "pooled_last": "one frame per prompt, the state at its last prompt token",
    "pooled_mean": "one frame per prompt, the mean state over its prompt tokens",
}


def _per_run(values):
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return str(values[0])
    return " / ".join(str(v) for v in values)


def render_summary(p):
    """Render the summary of a :class:`Paradigm` (see ``Paradigm.summary``)."""
    sched = p.schedule()
    frames = p.expected_frames()
    n_runs = p.n_runs
    source = str(p.path) if p.path is not None else "<dict>"
    lines = [f"{source}: valid"]
    lines.append(f"  name          {p.name}")
    if p.description.strip():
        lines.extend(textwrap.wrap(" ".join(p.description.split()), width=100,
                                   initial_indent="  about         ",
                                   subsequent_indent=" " * 16))
    lines.append(f"  schema        version {p.schema_version}, sha256 {p.sha256[:12]}")
    d = p.design
    if p.design_type == "block":
        seq = "[" + ", ".join(d["sequence"]) + "]"
        if d["tasks"]:
            text = (f"block; sequence {seq} for each of {len(d['tasks'])} tasks in "
                    f"{d['task_order']} order")
        else:
            text = f"block; sequence {seq}"
        text += f", {d['cycles']} cycle{'s' if d['cycles'] != 1 else ''}"
    else:
        text = "event; trials in random order"
        if d["max_consecutive"] is not None:
            text += f", at most {d['max_consecutive']} of one condition in a row"
    lines.append(f"  design        {text}")
    split = ("disjoint (no prompt is presented in two runs)" if p.split == "disjoint"
             else "reuse (runs may share prompts; no prompt repeats within a run)")
    lines.append(f"  runs          {n_runs}, split {split}, seed {p.seed}")
    counts = sched.groupby("run").size()
    blocks = sched.groupby("run")["block"].nunique()
    if p.design_type == "block":
        lines.append(f"  per run       {_per_run(blocks)} blocks, {_per_run(counts)} prompts")
    else:
        lines.append(f"  per run       {_per_run(counts)} trials")
    width = max(len("condition"), *(len(c) for c in p.conditions))
    head = f"  {'condition':<{width}}  {'role':<7}  prompts  per run  unused"
    if p.design_type == "block":
        head += "  blocks per run"
    lines.append(head)
    for name, cond in p.conditions.items():
        part = sched[sched["trial_type"] == name]
        per_run = [int((part["run"] == r).sum()) for r in range(1, n_runs + 1)]
        unused = len(cond.prompts) - part["prompt_id"].nunique()
        row = (f"  {name:<{width}}  {cond.role:<7}  {len(cond.prompts):>7}  "
               f"{_per_run(per_run):>7}  {unused:>6}")
        if p.design_type == "block":
            nb = [part.loc[part["run"] == r, "block"].nunique() for r in range(1, n_runs + 1)]
            k = d["prompts_per_block"][name]
            row += f"  {_per_run(nb)} × {k} prompt{'s' if k != 1 else ''}"
        if cond.answers is not None:
            row += "  (gold answers)"
        lines.append(row)
    g = p.generation
    if g.do_sample:
        gen = f"sampling (temperature {g.temperature:g}, top_p {g.top_p:g}, seed {g.seed})"
    else:
        gen = "greedy"
    gen += f", max_new_tokens {g.max_new_tokens}"
    gen += (", stop " + ", ".join(repr(s) for s in g.stop)) if g.stop else ", no stop strings"
    gen += f", chat template {'on' if g.chat_template else 'off'}"
    lines.append(f"  generation    {gen}")
    lines.append(f"  frames        {p.frames}: {_FRAMES[p.frames]}; context {p.context}")
    n = frames["n_prompts"].tolist()
    total = frames["frames"].tolist()
    if p.frames.startswith("pooled"):
        per = f"{_per_run(total)} exactly (1 per prompt)"
        everything = f"{sum(total)} exactly"
    elif p.frames == "generated":
        per = (f"≤ {_per_run(total)} (upper bound: {_per_run(n)} prompts × max_new_tokens "
               f"{g.max_new_tokens}; EOS or a stop string ends a prompt early)")
        everything = f"≤ {sum(total)}"
    elif p.frames == "prompt":
        per = (f"≈ {_per_run(total)} (estimate: prompt characters / 4; the tokenizer"
               + (" and the chat template decide)" if g.chat_template else " decides)"))
        everything = f"≈ {sum(total)}"
    else:
        per = (f"≤ {_per_run(frames['generated'])} generated + ≈ {_per_run(frames['prompt'])} "
               "prompt (upper bound + estimate as characters / 4)")
        everything = f"≤ {sum(frames['generated'])} + ≈ {sum(frames['prompt'])}"
    lines.append(f"  frames/run    {per}")
    lines.append(f"  frames, all   {everything} over {n_runs} run{'s' if n_runs != 1 else ''}")
    return "\n".join(lines)
