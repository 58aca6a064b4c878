"""``replacing``: write a file so that readers see the old one or the whole new one.

The memory backend's dump and the filesystem blob store write this way: a temporary
file beside the target (same directory, so the rename stays on one file system),
flushed and fsynced, then renamed over it; removed again if writing fails.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def replacing(target: Path, *, fsync: bool = True) -> Iterator[BinaryIO]:
    """A new file (mode 0600) that replaces ``target`` when the block ends; ``fsync``:
    its bytes reach the disk before the rename (the folder's entry is the caller's)."""
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
