"""The estimator contract (scikit-learn's), checked on every estimator of the package.

A new estimator is found automatically (any subclass of scikit-learn's
``BaseEstimator`` defined in llmfmri) and this test fails until it has a case
in ``CASES``: how to build it, fit it, and call one method that needs the fit.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pickle
import pkgutil

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator as SklearnBaseEstimator
from sklearn.base import clone

import llmfmri
from llmfmri._utils.estimator import BaseEstimator
from llmfmri.exceptions import NotFittedError

from _testing import SyntheticRecording, random_weights


def _all_estimators():
    found = {}
    for mod in pkgutil.walk_packages(llmfmri.__path__, "llmfmri."):
        if mod.name.split(".")[-1] in ("cli", "__main__") or ".commands" in mod.name:
            continue
        module = importlib.import_module(mod.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, SklearnBaseEstimator) and cls.__module__.startswith("llmfmri")
                    and not cls.__name__.startswith("_") and cls is not BaseEstimator):
                found[cls.__name__] = cls
    return found


def _events(n=96, seed=0):
    rng = np.random.default_rng(seed)
    block = np.arange(n) // 12
    ev = pd.DataFrame({"onset": np.arange(n), "duration": 1,
                       "trial_type": np.where(block % 2 == 0, "a", "b"), "block": block,
                       "prompt_id": [f"p{i // 4}" for i in range(n)]})
    Y = rng.standard_normal((n, 5))
    Y[ev.trial_type == "a", 0] += 1.0
    return Y, ev


def _first_level():
    from llmfmri.glm import FirstLevelGLM

    Y, ev = _events()
    return FirstLevelGLM(noise_model="ols"), (Y,), {"events": ev}, \
        lambda est: est.compute_contrast("a - b").values


def _second_level():
    from llmfmri.glm import SecondLevelGLM

    rng = np.random.default_rng(1)
    maps = rng.standard_normal((10, 6)) + [1, 0, 0, 0, 0, 0]
    return SecondLevelGLM(), (maps,), {}, \
        lambda est: est.compute_contrast("intercept", output_type="stat").values


def _neuromfa():
    from llmfmri.multifractal import NeuroMFA

    ckpts = [random_weights(seed=0), random_weights(seed=1, scale=0.03)]
    return NeuroMFA(n_neurons=16, n_samples=2), (ckpts,), {"steps": [0, 10]}, \
        lambda est: est.mean_spectra()[1]


def _decoder():
    from llmfmri.decoding import Decoder

    rec = SyntheticRecording(0, n_runs=3, tasks=("a", "b"), layer_size=8,
                             effects={"a": [0, 1], "b": [2, 3]}, amplitude=1.5)
    return Decoder(n_permutations=5, random_state=0), (rec,), {"conditions": ["a", "b"]}, \
        lambda est: est.predict(rec)["predicted"].to_numpy()


#: estimator name -> () -> (unfitted estimator, fit args, fit kwargs, method needing a fit)
CASES = {
    "FirstLevelGLM": _first_level,
    "SecondLevelGLM": _second_level,
    "NeuroMFA": _neuromfa,
    "Decoder": _decoder,
}

ESTIMATORS = _all_estimators()


def test_every_estimator_has_a_contract_case():
    assert ESTIMATORS, "no estimator found"
    missing = sorted(set(ESTIMATORS) - set(CASES))
    assert not missing, f"add a case for {missing} to CASES in {__file__}"


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimator_contract(name, caplog):
    cls = ESTIMATORS[name]
    est, args, kwargs, method = CASES[name]()
    assert isinstance(est, BaseEstimator), f"{name} must derive from llmfmri's BaseEstimator"
    # __init__ stores its arguments unchanged and nothing else
    params = est.get_params()
    sig = inspect.signature(cls.__init__)
    assert set(params) == {p for p in sig.parameters if p != "self"}
    assert not [k for k in vars(est) if k.endswith("_")], "fitted attributes set in __init__"
    assert "verbose" in params, f"{name} must take verbose"
    # clone, repr, set_params with a did-you-mean
    twin = clone(est)
    assert all(_same(twin.get_params()[k], v) for k, v in params.items())
    assert repr(est).startswith(f"{name}(")
    with pytest.raises(ValueError, match=r"Invalid parameter 'verbos'.*Did you mean 'verbose'"):
        clone(est).set_params(verbos=1)
    # unfitted use is a NotFittedError (a ValueError and an AttributeError)
    with pytest.raises(NotFittedError, match=rf"This {name} is not fitted yet"):
        method(est)
    assert not hasattr(est, "results_")
    # fit returns self, leaves the parameters alone, and is silent at verbose=0
    caplog.set_level(logging.DEBUG, logger="llmfmri")
    logging.getLogger("llmfmri").setLevel(logging.WARNING)
    caplog.clear()
    assert est.fit(*args, **kwargs) is est
    assert not [r for r in caplog.records if r.levelno < logging.WARNING], \
        f"{name}(verbose=0).fit logged: {[r.getMessage() for r in caplog.records]}"
    assert all(_same(est.get_params()[k], v) for k, v in params.items())
    assert [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    out = method(est)
    # a fitted estimator pickles and gives the same answer
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(method(again), out)
    # verbose applies to the call only: the package level is restored afterwards
    before = logging.getLogger("llmfmri").level
    clone(est).set_params(verbose=1).fit(*args, **kwargs)
    assert logging.getLogger("llmfmri").level == before
