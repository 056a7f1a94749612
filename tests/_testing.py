"""Helpers shared by the tests (not a test module)."""

import numpy as np

from llmfmri.paradigm import load_paradigm

CONTROL = ["The weather today is", "My favourite food is", "In the garden we", "On the train I",
           "Yesterday the shop", "A quiet evening at home", "The river runs", "Music in the park"]
TASK = ["The atom consists of", "Cells divide by", "Light travels at", "Gravity pulls"]


def make_paradigm(frames="generated", max_new_tokens=5, n_runs=2, do_sample=False, stop=(),
                  context="independent", name="tiny"):
    return load_paradigm({
        "schema_version": 1, "name": name,
        "conditions": {"control": {"role": "control", "prompts": CONTROL},
                       "science": {"role": "task", "prompts": TASK}},
        "design": {"type": "block", "sequence": ["control", "science", "control"],
                   "prompts_per_block": 2 if n_runs == 1 else 1},
        "runs": {"n": n_runs},
        "generation": {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "seed": 3,
                       "stop": list(stop),
                       **({"temperature": 0.9, "top_p": 0.95} if do_sample else {})},
        "frames": frames, "context": context,
    })


ARTS = ["The painter mixed", "A sonnet has", "The orchestra tuned", "Sculptors carve"]
MORE_CONTROL = ["The bus was late", "Breakfast this morning", "Our neighbour's dog",
                "A walk by the sea", "The kettle boiled", "Saturday at the market",
                "The children played", "Rain on the window"]


def make_two_task_paradigm(max_new_tokens=4, n_runs=2, name="tinytwo"):
    """Two tasks (science, arts) in off/on/off blocks: enough for overlap and identification."""
    return load_paradigm({
        "schema_version": 1, "name": name,
        "conditions": {"control": {"role": "control", "prompts": CONTROL + MORE_CONTROL},
                       "science": {"role": "task", "prompts": TASK},
                       "arts": {"role": "task", "prompts": ARTS}},
        "design": {"type": "block", "sequence": ["control", "task", "control"],
                   "tasks": ["science", "arts"], "prompts_per_block": {"task": 2, "control": 2}},
        "runs": {"n": n_runs},
        "generation": {"max_new_tokens": max_new_tokens, "do_sample": False, "seed": 3},
    })


def random_weights(n_blocks=2, d=48, d_mlp=128, d_kv=None, gated=False, seed=0, scale=0.02):
    """Weight matrices of a small transformer (NeuroMFA input), per block."""
    rng = np.random.default_rng(seed)
    d_kv = d if d_kv is None else d_kv
    layers = []
    for _ in range(n_blocks):
        w = dict(q=rng.normal(0, scale, (d, d)), k=rng.normal(0, scale, (d_kv, d)),
                 v=rng.normal(0, scale, (d_kv, d)), o=rng.normal(0, scale, (d, d)),
                 mlp_in=rng.normal(0, scale, (d_mlp, d)), mlp_out=rng.normal(0, scale, (d, d_mlp)))
        if gated:
            w["mlp_gate"] = rng.normal(0, scale, (d_mlp, d))
        layers.append(w)
    return layers


class SyntheticRecording:
    """Recording-like block design: a random offset per prompt, planted task effects.

    Each run: for every task (order shuffled per run), a control block then a task block,
    and a last control block. A block holds ``prompts_per_block`` prompts of
    ``frames_per_prompt`` frames. A frame is the planted effect of its condition
    (``amplitude`` on the units ``effects[task]``) + its prompt's offset (N(0, prompt_sd)
    per unit, shared by all the prompt's frames) + noise (N(0, noise_sd)). Prompt ids are
    unique per run unless ``shared_prompts`` (then every run shows the same prompts).
    """

    def __init__(self, seed=0, *, n_runs=4, tasks=("a", "b", "c"), n_layers=4, layer_size=32,
                 prompts_per_block=4, frames_per_prompt=6, prompt_sd=1.0, noise_sd=1.0,
                 effects=None, amplitude=1.0, shared_prompts=False):
        import pandas as pd

        from llmfmri.units import UnitSpace

        rng = np.random.default_rng(seed)
        self.units = UnitSpace({f"layers.{k}.resid_post": layer_size for k in range(n_layers)})
        n_units = self.units.n_units
        self.runs = list(range(1, n_runs + 1))
        self.tasks = list(tasks)
        self._frames, self._events = {}, {}
        for run in self.runs:
            kinds = []
            for t in rng.permutation(self.tasks):
                kinds += ["control", str(t)]
            kinds.append("control")
            rows, count = [], {}
            for b, kind in enumerate(kinds):
                for _ in range(prompts_per_block):
                    k = count[kind] = count.get(kind, -1) + 1
                    pid = f"{kind}-{k}" if shared_prompts else f"r{run}-{kind}-{k}"
                    rows += [(kind, b, pid)] * frames_per_prompt
            n = len(rows)
            ev = pd.DataFrame({"onset": np.arange(n), "duration": 1,
                               "trial_type": [r[0] for r in rows],
                               "block": [r[1] for r in rows], "run": run,
                               "prompt_id": [r[2] for r in rows]})
            Y = noise_sd * rng.standard_normal((n, n_units))
            codes, uniques = pd.factorize(ev["prompt_id"])
            Y += prompt_sd * rng.standard_normal((len(uniques), n_units))[codes]
            for task, cols in (effects or {}).items():
                Y[np.ix_(ev["trial_type"].to_numpy() == task, np.asarray(cols))] += amplitude
            self._frames[run], self._events[run] = Y, ev

    def frames(self, run):
        return self._frames[run]

    def events(self, run):
        return self._events[run]


def _per_layer(start, stop, n_layers=4, size=32):
    return np.concatenate([np.arange(start, stop) + size * k for k in range(n_layers)])


#: planted networks, 4 units in each of the 4 layers: a and b share 2 units per layer
#: (8 of their 16: true Dice 0.5), c is apart
PLANTED = {"a": _per_layer(0, 4), "b": _per_layer(2, 6), "c": _per_layer(20, 24)}
CONTRASTS = {t: f"{t} - control" for t in ("a", "b", "c")}
