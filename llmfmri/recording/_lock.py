"""One writer per recording directory: an OS file lock, and who holds it.

``record`` takes ``OUT/.llmfmri.lock`` (``filelock.FileLock``: ``flock`` on POSIX,
``msvcrt.locking`` on Windows) before it writes anything, and holds it until it
returns. The operating system releases such a lock when its process ends, even
when the process is killed, so a stale lock cannot block a later resume. Who
holds it (pid, host, start time, command) is written next to it in
``OUT/.llmfmri.lock.json``, so a second writer is refused with a message naming
the first. Readers (:class:`~llmfmri.recording.Recording`) never take the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from .._utils import atomic_write_json
from ..exceptions import RecordingLockedError

__all__ = ["LOCK_NAME", "LOCK_INFO_NAME", "LOCK_FILES", "recording_lock", "lock_holder"]

LOCK_NAME = ".llmfmri.lock"
LOCK_INFO_NAME = ".llmfmri.lock.json"
#: files of the lock itself: not part of a recording (never cleared, never a conflict)
LOCK_FILES = (LOCK_NAME, LOCK_INFO_NAME)


def lock_holder(out):
    """What ``OUT/.llmfmri.lock.json`` says about the writer (a dict, empty if unreadable)."""
    try:
        return json.loads((Path(out) / LOCK_INFO_NAME).read_text())
    except (OSError, ValueError):
        return {}


def _describe(info):
    if not info:
        return ("another process (it has not written its details to "
                f"{LOCK_INFO_NAME} yet)")
    bits = [f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"]
    if info.get("started"):
        bits.append(f"started {info['started']}")
    if info.get("command"):
        bits.append(f"command: {info['command']}")
    return "process " + ", ".join(bits)


@contextlib.contextmanager
def recording_lock(out):
    """Hold the recording directory's lock for the block, or refuse at once.

    Parameters
    ----------
    out : str or Path
        The recording directory (created if needed: the lock lives inside it).

    Raises
    ------
    RecordingLockedError
        When another process holds the lock; the message names it.
    """
    from filelock import FileLock, Timeout

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RecordingLockedError(
            f"{out} is being recorded by {_describe(lock_holder(out))}. Two writers into one "
            "recording would interleave its journal and frames beyond repair, so this call "
            "wrote nothing. Wait for that process to finish (running the same command again "
            "afterwards resumes or skips what it recorded), or record into another directory. "
            "The lock is released as soon as that process ends, even if it is killed."
        ) from None
    info_path = out / LOCK_INFO_NAME
    try:
        atomic_write_json(info_path, {
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv)[:300],
        }, overwrite=True)
        yield
    finally:
        with contextlib.suppress(OSError):
            info_path.unlink()
        lock.release()
