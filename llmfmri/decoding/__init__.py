"""Decoding: which task is presented, read from held-out runs.

- :func:`identify`: identification by correspondence (the seed study): task
  networks defined on training runs only; each held-out block is assigned to
  the network whose units are most active in it; leave-one-run-out, with a
  permutation test over blocks.
- :class:`Decoder`: scikit-learn classifiers on prompt patterns (one sample
  per prompt), grouped cross-validation so that no prompt is on both sides
  of a split, feature screening fitted inside each training fold, and
  scikit-learn's ``permutation_test_score`` with labels permuted within runs.
- :func:`nearest_networks`: a task that defined no network, described by the
  networks its map resembles.

Both return a :class:`DecodingResult` (accuracy, chance, permutation p,
predictions, confusion matrix). Nothing here imports torch.

Examples
--------
>>> import llmfmri.decoding as dc
>>> dc.Decoder(estimator="svc").get_params()["estimator"]
'svc'
"""

from ._decoder import ESTIMATORS, Decoder
from ._identify import identify, network_scores
from ._nearest import nearest_networks
from ._result import DecodingResult

__all__ = [
    "identify",
    "network_scores",
    "Decoder",
    "ESTIMATORS",
    "DecodingResult",
    "nearest_networks",
]
