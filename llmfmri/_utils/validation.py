"""The validation kit every stage uses: messages that teach.

Each check names the parameter, says what was expected, shows what was got and,
where it helps, suggests the fix (MNE's ``_check_option`` / ``_suggest``,
scikit-learn's ``check_scalar``). Nothing here imports a heavy dependency.
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np

__all__ = [
    "did_you_mean",
    "allowed_values",
    "check_option",
    "check_positive_int",
    "check_fraction",
    "check_shape",
    "check_random_state",
    "check_columns",
    "renamed",
]


def did_you_mean(value, options, *, n=1, cutoff=0.6):
    """Return ``" Did you mean 'x'?"`` for the closest option, or ``""``.

    Parameters
    ----------
    value : str
        What the user wrote.
    options : iterable of str
        What exists.

    Examples
    --------
    >>> from llmfmri._utils import did_you_mean
    >>> did_you_mean("resid_pst", ["resid_post", "attn_out"])
    " Did you mean 'resid_post'?"
    """
    matches = difflib.get_close_matches(str(value), [str(o) for o in options], n=n, cutoff=cutoff)
    if not matches:
        return ""
    if len(matches) == 1:
        return f" Did you mean {matches[0]!r}?"
    return " Did you mean one of " + ", ".join(repr(m) for m in matches) + "?"


def allowed_values(allowed, value, *, got=None):
    """The one phrase for a value outside a set: ``"'a', 'b', but got 'x'. Did you mean 'a'?"``.

    Parameters
    ----------
    allowed : iterable
        The allowed values.
    value : object
        What was given.
    got : str, optional
        How to show ``value`` (default ``repr(value)``).

    Examples
    --------
    >>> from llmfmri._utils import allowed_values
    >>> allowed_values(("ols", "ar1"), "ar2")
    "'ols', 'ar1', but got 'ar2'. Did you mean 'ar1'?"
    """
    allowed = list(allowed)
    listed = ", ".join(repr(a) for a in allowed)
    hint = did_you_mean(value, [a for a in allowed if isinstance(a, str)]) \
        if isinstance(value, str) else ""
    return f"{listed}, but got {got if got is not None else repr(value)}.{hint}"


def check_option(name, value, allowed, *, error=ValueError):
    """Return ``value`` if it is one of ``allowed``; raise ``error`` otherwise.

    The message follows the house format: what was expected, what was got,
    and a did-you-mean.

    Raises
    ------
    error (default ValueError)
        ``"Allowed values for name are 'a', 'b', but got 'x'. Did you mean 'a'?"``

    Examples
    --------
    >>> from llmfmri._utils import check_option
    >>> check_option("noise_model", "ols", ("ols", "ar1"))
    'ols'
    """
    allowed = list(allowed)
    try:
        if value in allowed:
            return value
    except TypeError:  # unhashable / uncomparable values are simply not allowed
        pass
    raise error(f"Allowed values for {name} are {allowed_values(allowed, value)}")


def check_positive_int(name, value, *, minimum=1, allow_none=False, error=ValueError):
    """Return ``int(value)`` for a whole number >= ``minimum``; raise ``error`` otherwise.

    Booleans, fractions, NaN and strings are refused (``True`` is not 1 job).

    Examples
    --------
    >>> from llmfmri._utils import check_positive_int
    >>> check_positive_int("n_perm", 1000)
    1000
    >>> check_positive_int("n_perm", 0)
    Traceback (most recent call last):
    ...
    ValueError: n_perm must be a positive integer, but got 0.
    """
    if value is None and allow_none:
        return None
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and np.isfinite(value) and int(value) == value and int(value) >= minimum)
    if not ok:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{name} must be {what}" + (" or None" if allow_none else "")
                    + f", but got {value!r}.")
    return int(value)


def check_fraction(name, value, *, low=0.0, high=1.0, inclusive=(False, True), error=ValueError):
    """Return ``float(value)`` for a number in the interval (low, high]; raise otherwise.

    Parameters
    ----------
    inclusive : (bool, bool), default=(False, True)
        Whether ``low`` and ``high`` themselves are allowed.

    Examples
    --------
    >>> from llmfmri._utils import check_fraction
    >>> check_fraction("alpha", 0.05)
    0.05
    """
    lo_ok = (lambda v: v >= low) if inclusive[0] else (lambda v: v > low)
    hi_ok = (lambda v: v <= high) if inclusive[1] else (lambda v: v < high)
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and np.isfinite(value) and lo_ok(value) and hi_ok(value))
    if not ok:
        interval = ("[" if inclusive[0] else "(") + f"{low:g}, {high:g}" + (
            "]" if inclusive[1] else ")")
        raise error(f"{name} must be a number in {interval}, but got {value!r}.")
    return float(value)


def check_shape(name, shape, expected, *, other=None, error=ValueError):
    """Raise ``error`` unless ``shape`` matches ``expected`` (``None`` entries match anything).

    Parameters
    ----------
    name : str
        What has the shape (``"Y"``, ``"values"``).
    shape : tuple of int, or an array
        The shape got (or an object with ``.shape``).
    expected : tuple of int or None
        The shape expected; ``None`` for a free dimension.
    other : str, optional
        Where ``expected`` comes from, named in the message
        (``"the design's (96, 3)"``).

    Returns
    -------
    tuple of int
        The shape.

    Examples
    --------
    >>> from llmfmri._utils import check_shape
    >>> check_shape("values", (4,), (5,), other="units (a UnitSpace of 5 units)")
    Traceback (most recent call last):
    ...
    ValueError: values has shape (4,), but units (a UnitSpace of 5 units) needs shape (5,).
    """
    if hasattr(shape, "shape"):
        shape = shape.shape
    shape = tuple(int(s) for s in shape)
    expected = tuple(expected)
    ok = len(shape) == len(expected) and all(e is None or int(e) == s
                                             for s, e in zip(shape, expected))
    if not ok:
        shown = "(" + ", ".join("n" if e is None else str(e) for e in expected) + \
            ("," if len(expected) == 1 else "") + ")"
        raise error(f"{name} has shape {shape}, but {other or 'it'} needs shape {shown}.")
    return shape


def check_random_state(random_state, name="random_state"):
    """A :class:`numpy.random.Generator` from None, an int, a SeedSequence or a Generator.

    ``None`` gives fresh entropy; an int makes the result reproducible.

    Examples
    --------
    >>> from llmfmri._utils import check_random_state
    >>> int(check_random_state(0).integers(10)) == int(check_random_state(0).integers(10))
    True
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2 ** 31 - 1))
    if random_state is None or isinstance(random_state, np.random.SeedSequence) or (
            isinstance(random_state, numbers.Integral)
            and not isinstance(random_state, (bool, np.bool_)) and random_state >= 0):
        return np.random.default_rng(random_state)
    raise ValueError(
        f"{name} must be None, a non-negative int or a numpy Generator, but got "
        f"{random_state!r}."
    )


def check_columns(name, columns, required, *, error=ValueError):
    """Raise ``error`` if a required column is missing, with a did-you-mean.

    Examples
    --------
    >>> from llmfmri._utils import check_columns
    >>> check_columns("events", ["onset", "duraton"], ["onset", "duration"])
    Traceback (most recent call last):
    ...
    ValueError: events lacks the column 'duration' (columns: ['onset', 'duraton']). Did you ...
    """
    columns = [str(c) for c in columns]
    for col in required:
        if col not in columns:
            raise error(f"{name} lacks the column {col!r} (columns: {columns})."
                        + did_you_mean(col, columns))


def renamed(old_name, old_value, new_name, new_value, *, default=None):
    """The value of a renamed parameter: ``new_value``, or ``old_value`` with a FutureWarning.

    Parameters
    ----------
    old_name, new_name : str
    old_value : object
        What was passed under the old name (``None`` when not passed).
    new_value : object
        What was passed under the new name.
    default : object
        The new parameter's default (passing both names is refused unless the
        new one is at its default).

    Raises
    ------
    TypeError
        When both names are given.
    """
    if old_value is None:
        return new_value
    if new_value is not default and new_value != default:
        raise TypeError(f"Pass {new_name} only ({old_name} is its old name), not both.")
    from .logging import warn

    warn(f"{old_name} is renamed {new_name}; {old_name} will be removed in a future release.",
         FutureWarning)
    return old_value
