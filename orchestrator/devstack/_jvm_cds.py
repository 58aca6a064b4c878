"""Class-data sharing for the broker's JVM: about 2 s off every start after the first.

The first start on a machine runs with `-XX:ArchiveClassesAtExit`, so the JVM
writes the classes it loaded to an archive when the broker stops cleanly; later
starts map that archive (`-XX:SharedArchiveFile`) instead of loading and
verifying those classes again. The archive's name hashes the java binary and
the jar list, so a JDK upgrade or another Kafka version gets a new archive. A
JVM that cannot use an archive logs a warning and starts normally, so this can
cost time, never a start.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class CdsArchive:
    """The shared-class archive for one (java, jars) pair, kept beside the jars."""

    def __init__(self, java: str, libs: Path) -> None:
        digest = hashlib.sha256()
        java_real = Path(os.path.realpath(java))
        stat = java_real.stat()
        digest.update(f"{java_real}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        for jar in sorted(libs.glob("*.jar")):
            digest.update(f"{jar.name}:{jar.stat().st_size}\n".encode())
        self.path = libs.parent / f"kafka-cds-{digest.hexdigest()[:16]}.jsa"
        self._pending: Path | None = None

    def jvm_options(self) -> list[str]:
        """Use the archive if it exists, else ask this JVM to write one when it exits."""
        if self.path.is_file() and self.path.stat().st_size > 0:
            return [f"-XX:SharedArchiveFile={self.path}"]
        if not os.access(self.path.parent, os.W_OK):
            return []
        self._pending = self.path.with_name(f"{self.path.name}.{os.getpid()}-{id(self)}.tmp")
        return [f"-XX:ArchiveClassesAtExit={self._pending}"]

    def finish(self, clean_exit: bool) -> None:
        """After the JVM is gone: publish the archive it wrote, unless it was killed mid-way."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if clean_exit and pending.is_file() and pending.stat().st_size > 0:
            os.replace(pending, self.path)
        else:
            pending.unlink(missing_ok=True)
