"""Paradigm problems: every problem names its file, line and field path.

:class:`ParadigmError` lives in :mod:`llmfmri.exceptions` and :class:`Problem` in
:mod:`llmfmri._utils.yamlsource` (sweep files share them); both are re-exported here.
"""

from .._utils.yamlsource import Problem
from ..exceptions import ParadigmError

__all__ = ["ParadigmError", "Problem"]
