"""Networks: sets of units that respond to a task, their overlap and their repeatability.

A network is a set of units (a boolean mask over a :class:`~llmfmri.units.UnitSpace`)
cut from a task map. All frames of one prompt share its context, so the maps
behind networks generalise over prompts by default (:func:`task_map` with
``inference="prompt"``: one summary per prompt, a test across prompts; or
``"permutation"``: max-T exchanging whole prompts within runs). Token-level
maps (``"token"``) stay available and are labelled for what they are: a fixed
effect of the presented prompts (Clark 1973).

- maps: :func:`task_map`, :func:`task_maps`, :class:`TaskMap`
- networks: :class:`Network`, :func:`threshold`, :func:`top_k`,
  :func:`random_network`, :func:`save_networks`, :func:`load_network`
- overlap: :func:`dice`, :func:`jaccard`, :func:`overlap_coefficient`,
  :func:`overlap_matrix`, :func:`conjunction`, :func:`overlap_test`,
  :func:`overlap_test_matrix`
- repeatability: :func:`repeatability`, :func:`icc`

Nothing here imports torch. (``llmfmri.multifractal.NeuronNetwork`` is a
different object: a graph of neuron interactions.)

Examples
--------
>>> import numpy as np, pandas as pd
>>> import llmfmri.networks as nw
>>> rng = np.random.default_rng(2)
>>> ev = pd.DataFrame({"onset": np.arange(240), "duration": 1,
...                    "trial_type": np.repeat(["task", "control"] * 6, 20),
...                    "prompt_id": np.arange(240) // 5})
>>> Y = rng.standard_normal((240, 50)); Y[ev.trial_type == "task", :3] += 1.0
>>> net = nw.threshold(nw.task_map(Y, "task - control", events=ev), alpha=0.05)
>>> net.columns.tolist(), net.inference
([0, 1, 2], 'prompt')
"""

from ._io import load_network, save_networks
from ._network import Network
from ._overlap import (METRICS, OverlapMatrix, OverlapTest, conjunction, dice, jaccard,
                       overlap_coefficient, overlap_matrix, overlap_test, overlap_test_matrix)
from ._repeat import RepeatabilityResult, icc, repeatability
from ._taskmap import TAILS, TaskMap, task_map, task_maps
from ._threshold import random_network, threshold, top_k

__all__ = [
    "TaskMap",
    "task_map",
    "task_maps",
    "TAILS",
    "Network",
    "threshold",
    "top_k",
    "random_network",
    "save_networks",
    "load_network",
    "dice",
    "jaccard",
    "overlap_coefficient",
    "overlap_matrix",
    "METRICS",
    "conjunction",
    "overlap_test",
    "OverlapTest",
    "overlap_test_matrix",
    "OverlapMatrix",
    "repeatability",
    "RepeatabilityResult",
    "icc",
]
