"""Private files: riskgraph's state (store files, password, artifacts, caches) is for its user only."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700), or tighten it to 0700 if it exists, is ours and is not shared.

    Parents are created with the usual mode; only the folder itself is made private. A folder
    with the sticky bit (``/tmp`` and the like) or owned by someone else is left alone: it is
    shared by design, and changing it would break other users.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR_MODE)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX:
        path.chmod(PRIVATE_DIR_MODE)
    return path


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created inside the block get no group or world permissions.

    The umask is process-wide, so the block should hold only this thread's writes (riskgraph
    writes its artifacts and caches from the main thread).
    """
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)
