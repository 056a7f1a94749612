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
