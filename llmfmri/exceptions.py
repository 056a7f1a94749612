"""Every error and warning class of llmfmri, in one place.

Each class subclasses a built-in, so ``except ValueError`` (or ``FileExistsError``,
``OSError``...) catches it too; each stage re-exports the ones it raises. As in
scikit-learn's and nilearn's ``exceptions`` modules, nothing else lives here.

How the command line maps them to exit codes (see ``docs/architecture.md``):
errors about what the user gave (``ValueError``, ``TypeError``, ``LookupError``,
``FileNotFoundError``, ``FileExistsError`` and their subclasses below) exit with
2; anything that goes wrong while running exits with 1.

Examples
--------
>>> from llmfmri.exceptions import DataError
>>> issubclass(DataError, ValueError)
True
"""

from __future__ import annotations

__all__ = [
    # errors
    "ConfigError",
    "ParadigmError",
    "SweepError",
    "SiteError",
    "UnknownArchitectureError",
    "ModelLoadError",
    "ModelNotFoundError",
    "RecordingConflictError",
    "RecordingLockedError",
    "RecordingIncompleteError",
    "ContextLengthError",
    "DesignMatrixError",
    "DataError",
    "ContrastError",
    "NotFittedError",
    "OutputNameError",
    "MultifractalError",
    # warnings
    "DesignWarning",
    "ConstantUnitWarning",
    "LeakageWarning",
    "PerfectFitWarning",
    "StorageWarning",
    "MultifractalWarning",
]


# ---------------------------------------------------------------------- inputs
class ConfigError(ValueError):
    """A configuration file (or dict) is invalid: every problem with its file, line and field.

    The message gives, for each problem, ``file:line: field.path: what was
    expected, what was found`` and, where it helps, a did-you-mean.

    Parameters
    ----------
    problems : Problem or list of Problem
        :class:`llmfmri.paradigm.Problem` objects (anything with ``file``,
        ``line``, ``field``, ``message`` and ``format()``).

    Attributes
    ----------
    problems : list of Problem
        Every problem found, in file order where known. The first one is also
        available as :attr:`file`, :attr:`line` and :attr:`field`.

    """

    def __init__(self, problems):
        if hasattr(problems, "format") and not isinstance(problems, (list, tuple)):
            problems = [problems]
        self.problems = list(problems)
        super().__init__(self._render())

    def _render(self):
        if len(self.problems) == 1:
            return self.problems[0].format()
        files = sorted({p.file for p in self.problems})
        head = f"{len(self.problems)} problems in {', '.join(files)}:"
        return "\n".join([head] + ["  " + p.format() for p in self.problems])

    def __reduce__(self):
        return (type(self), (self.problems,))

    @property
    def file(self):
        """File of the first problem."""
        return self.problems[0].file if self.problems else None

    @property
    def line(self):
        """Line of the first problem (None for dict sources)."""
        return self.problems[0].line if self.problems else None

    @property
    def field(self):
        """Field path of the first problem."""
        return self.problems[0].field if self.problems else None


class ParadigmError(ConfigError):
    """A paradigm file (or dict) is invalid (see :class:`ConfigError`).

    Examples
    --------
    >>> from llmfmri.paradigm import load_paradigm, ParadigmError
    >>> try:
    ...     load_paradigm({"schema_version": 1, "name": "x", "conditons": {}})
    ... except ParadigmError as err:
    ...     problem = err.problems[0]
    >>> problem.field, problem.line
    ('conditons', None)
    >>> problem.message.endswith("Did you mean 'conditions'?")
    True
    """


class SweepError(ConfigError):
    """A sweep file (or dict) is invalid (see :class:`ConfigError`)."""


class SiteError(ValueError):
    """A site name that does not follow the site grammar or does not exist in the model."""


class UnknownArchitectureError(ValueError):
    """A model whose architecture has no adapter (the message lists what was found)."""


class ContextLengthError(ValueError):
    """A prompt (or a continuous context) longer than the model's position limit.

    Raised by ``record`` before anything is written, naming the prompt id, its
    length in tokens and the limit (``max_position_embeddings``, ``n_positions``...).
    """


class DesignMatrixError(ValueError):
    """A design matrix that cannot be fitted: not finite, wrong shape or rank deficient."""


class DataError(ValueError):
    """Data that cannot be fitted or analysed: NaN/inf values, wrong shape or length."""


class ContrastError(ValueError):
    """A contrast that does not fit the design (unknown column, wrong length, bad syntax)."""


class OutputNameError(ValueError):
    """Names derived from user text that collide, or are not usable as file names."""


class MultifractalError(ValueError):
    """Invalid input or settings for the multifractal (NeuroMFA) analysis."""


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (scikit-learn's ``NotFittedError`` contract).

    Subclasses both ``ValueError`` and ``AttributeError``, as scikit-learn's does,
    so ``hasattr(estimator, "fitted_attribute_")``-style checks keep working.
    """


# ---------------------------------------------------------------------- files
class ModelLoadError(OSError):
    """A model could not be loaded or fetched (offline, missing files, bad checksum)."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """A model given as a local path that does not exist (bad input, not a download failure)."""


class RecordingConflictError(FileExistsError):
    """The output directory holds a different recording."""


class RecordingLockedError(FileExistsError):
    """Another process is recording into the same directory (it holds the directory's lock).

    The message names the holder (pid, host, start time) from the lock's
    sidecar ``.llmfmri.lock.json``. Readers (``Recording``) never need the lock.
    """


class RecordingIncompleteError(RuntimeError):
    """A run of the recording ended early and is not complete."""


# ---------------------------------------------------------------------- warnings
class DesignWarning(UserWarning):
    """Something in the events or confounds was filled in or ignored while building a design."""


class ConstantUnitWarning(UserWarning):
    """Some units are constant over all frames: no variance at all (see run_glm).

    Every contrast orthogonal to the constant has effect 0 there, and t = z = 0.
    """


class PerfectFitWarning(UserWarning):
    """Some units are fitted exactly by the design: zero residual variance (see run_glm).

    Not the same as a constant unit: a non-zero effect there is known without
    error (t = +-inf, p = 0, z the largest finite z), the strongest effect, not none.
    """


class StorageWarning(UserWarning):
    """A lossy storage conversion changed values (e.g. float16 overflow to inf).

    The message says which run, how many values, which frames and units, and
    the largest magnitude that did not fit.
    """


class LeakageWarning(UserWarning):
    """Held-out data share stimuli (prompts) with training data, so a score tests the stimuli."""


class MultifractalWarning(UserWarning):
    """A multifractal analysis step dropped or filled something (layers, nodes, samples)."""
