"""Logging and warnings: one ``llmfmri`` logger, ``verbose`` per call, warnings at the user's line.

* :func:`set_verbose` sets the package-wide level (the only thing that does).
* ``verbose`` on a function or estimator applies to that call only
  (:func:`use_log_level`, MNE's ``use_log_level``): ``0``/``False`` warnings
  only, ``1``/``True`` progress (INFO), ``2`` debug. A call never makes the
  package quieter than :func:`set_verbose` made it, and ``None`` leaves the
  level as it is. When no handler would show the messages (a fresh notebook),
  one is added for the duration of the call, so ``verbose=1`` always shows.
* :func:`warn` issues a warning whose ``stacklevel`` is computed so that it
  points at the first frame outside llmfmri (nilearn's and pandas'
  ``find_stack_level``), however deep inside the library it was raised.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
import warnings

__all__ = ["logger", "set_verbose", "verbose_level", "use_log_level", "with_verbose",
           "find_stack_level", "warn", "progress_bar"]

logger = logging.getLogger("llmfmri")

_FORMAT = "[llmfmri] %(message)s"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def verbose_level(verbose):
    """The logging level a ``verbose`` value stands for.

    ``True``/``1`` (or any int of 1) → INFO, ``>= 2`` → DEBUG, ``False``/``0`` →
    WARNING; a level name (``"INFO"``) or a logging level number (``>= 10``) is
    taken as it is.

    Raises
    ------
    ValueError
        For anything else (negative numbers, unknown names).
    """
    if isinstance(verbose, str):
        level = logging.getLevelName(verbose.upper())
        if not isinstance(level, int):
            raise ValueError(
                "verbose must be a bool, an int or a logging level name such as 'INFO', "
                f"but got {verbose!r}."
            )
        return level
    if verbose is True:
        return logging.INFO
    if verbose is False or verbose is None:
        return logging.WARNING
    try:
        v = int(verbose)
    except (TypeError, ValueError):
        raise ValueError(
            f"verbose must be a bool, an int or a logging level name, but got {verbose!r}."
        ) from None
    if v < 0 or v != verbose:
        raise ValueError(f"verbose must be a non-negative int, but got {verbose!r}.")
    if v >= 10:
        return v
    return logging.WARNING if v == 0 else (logging.INFO if v == 1 else logging.DEBUG)


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record is emitted.

    (A plain ``StreamHandler(sys.stderr)`` keeps the stream it was created with, which
    a notebook or a test harness may have replaced and closed since.)
    """

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _stream_handler():
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler


def set_verbose(verbose):
    """Set the package-wide level of the ``llmfmri`` logger.

    ``True`` / ``1`` → INFO, ``2`` → DEBUG, ``False`` / ``0`` → WARNING, or a
    level name. A stream handler (stderr) is added once if the logger has none.
    This is the only function in llmfmri that changes the global level;
    ``verbose=`` on a call changes it for that call only.

    Returns
    -------
    int
        The level set.
    """
    level = verbose_level(verbose)
    logger.setLevel(level)
    if not logger.handlers:
        logger.addHandler(_stream_handler())
    return level


@contextlib.contextmanager
def use_log_level(verbose):
    """Within the block, log at least as much as ``verbose`` asks (for this call only).

    Parameters
    ----------
    verbose : None, bool, int or str
        ``None`` changes nothing. Otherwise the ``llmfmri`` logger shows
        messages at :func:`verbose_level` ``(verbose)`` or above (or at the
        global level, if that is more verbose) until the block ends, when the
        previous level is restored. A temporary stderr handler is attached if
        no handler would show them.

    Yields
    ------
    int
        The effective level inside the block.
    """
    if verbose is None:
        yield logger.getEffectiveLevel()
        return
    wanted = verbose_level(verbose)
    old_level = logger.level
    effective = min(wanted, logger.getEffectiveLevel())
    handler = None
    if effective < logging.WARNING and not _has_visible_handler(effective):
        handler = _stream_handler()
        logger.addHandler(handler)
    logger.setLevel(effective)
    try:
        yield effective
    finally:
        logger.setLevel(old_level)
        if handler is not None:
            logger.removeHandler(handler)


def _has_visible_handler(level):
    current = logger
    while current is not None:
        if any(h.level <= level for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def with_verbose(func):
    """Decorator: run ``func`` inside :func:`use_log_level` of its ``verbose`` argument.

    For methods of estimators, ``self.verbose`` is used when the call has no
    ``verbose`` argument.
    """
    sig = inspect.signature(func)
    has_arg = "verbose" in sig.parameters

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        verbose = None
        if has_arg:
            bound = sig.bind_partial(*args, **kwargs)
            verbose = bound.arguments.get("verbose", sig.parameters["verbose"].default)
        elif args and hasattr(args[0], "verbose"):
            verbose = getattr(args[0], "verbose")
        with use_log_level(verbose):
            return func(*args, **kwargs)

    return wrapper


def find_stack_level():
    """Number of stack levels from the caller up to the first frame outside llmfmri.

    Pass it as ``stacklevel`` to :func:`warnings.warn` so the warning points at
    the user's line, not inside the library (nilearn's ``find_stack_level``).
    """
    frame = inspect.currentframe()
    n = 0
    try:
        while frame is not None:
            fname = os.path.abspath(frame.f_code.co_filename)
            if fname.startswith(_PACKAGE_DIR + os.sep):
                frame = frame.f_back
                n += 1
            else:
                break
    finally:
        del frame
    return max(n, 1)


def warn(message, category=UserWarning):
    """``warnings.warn(message, category)`` pointing at the user's line (see module notes)."""
    warnings.warn(message, category, stacklevel=find_stack_level())


def progress_bar(*, total, desc, unit="it", verbose=True, initial=0):
    """A tqdm progress bar (notebook-aware), shown when ``verbose`` is truthy."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not verbose,
                leave=False)
