"""Private helpers shared by every stage: validation, logging, files.

Nothing here imports torch, matplotlib or any heavy dependency.

- :mod:`.validation`: the validation kit (option check with did-you-mean,
  shape check naming both shapes, whole numbers, fractions, random states).
- :mod:`.logging`: the ``llmfmri`` logger, ``verbose`` per call, warnings
  that point at the user's line.
- :mod:`.files`: data home, atomic writes that refuse to overwrite unless asked.
- :mod:`.estimator`: the estimator contract (imports scikit-learn; not
  re-exported here so that light modules stay light).
"""

from .files import (atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text,
                    check_writable, get_data_home, new_file_mode, package_versions,
                    sha256_file)
from .logging import (find_stack_level, logger, progress_bar, set_verbose, use_log_level,
                      verbose_level, warn, with_verbose)
from .validation import (allowed_values, check_columns, check_fraction, check_option,
                         check_positive_int, check_random_state, check_shape, did_you_mean,
                         renamed)

__all__ = [
    "allowed_values", "atomic_path", "atomic_write_bytes", "atomic_write_json",
    "atomic_write_text", "check_columns", "check_fraction", "check_option",
    "check_positive_int", "check_random_state", "check_shape", "check_writable",
    "did_you_mean", "find_stack_level", "get_data_home", "logger", "new_file_mode",
    "package_versions", "progress_bar", "renamed", "set_verbose", "sha256_file", "use_log_level",
    "verbose_level", "warn", "with_verbose",
]
