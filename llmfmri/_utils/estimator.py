"""The estimator contract (scikit-learn's), shared by every llmfmri estimator.

An llmfmri estimator

* derives from :class:`BaseEstimator` (scikit-learn's), so ``get_params``,
  ``set_params``, ``clone``, ``repr`` and the notebook display come for free;
* stores its ``__init__`` arguments unchanged and does nothing else there;
  validation happens in ``fit``;
* returns ``self`` from ``fit``; names fitted attributes with a trailing ``_``;
* calls :func:`check_is_fitted` at the top of every method that needs a fit,
  which raises :class:`llmfmri.exceptions.NotFittedError`;
* takes ``verbose`` (see :mod:`llmfmri._utils.logging`): it applies to that
  estimator's calls only.

``tests/test_estimator_contract.py`` checks every estimator in the package.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator as _SklearnBaseEstimator

from ..exceptions import NotFittedError

__all__ = ["BaseEstimator", "check_is_fitted"]


class BaseEstimator(_SklearnBaseEstimator):
    """Base class of llmfmri estimators (scikit-learn's ``BaseEstimator``).

    Subclasses list every parameter in ``__init__`` and store each one under
    its own name; ``__sklearn_is_fitted__`` answers whether ``fit`` has run
    (any attribute ending in ``_``).
    """

    def set_params(self, **params):
        """Set parameters (scikit-learn's ``set_params``), with a did-you-mean for unknown ones.

        Returns
        -------
        self
        """
        from .validation import did_you_mean

        valid = self._get_param_names()
        for key in params:
            name = key.split("__", 1)[0]
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters are "
                    f"{valid}." + did_you_mean(name, valid)
                )
        return super().set_params(**params)

    def __sklearn_is_fitted__(self):
        return any(k.endswith("_") and not k.startswith("__") for k in vars(self))


def check_is_fitted(estimator, attributes=None):
    """Raise :class:`~llmfmri.exceptions.NotFittedError` unless ``estimator`` was fitted.

    Parameters
    ----------
    estimator : BaseEstimator
    attributes : str or list of str, optional
        Fitted attributes that must exist (default: any attribute ending in ``_``).

    Raises
    ------
    NotFittedError
        ``"This FirstLevelGLM is not fitted yet; call fit(...) before compute_contrast."``
    """
    if attributes is None:
        fitted = estimator.__sklearn_is_fitted__()
    else:
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        fitted = all(hasattr(estimator, a) for a in attributes)
    if not fitted:
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet; call fit(...) with "
            "appropriate arguments before using this method."
        )
