"""Apache Kafka's broker jars, resolved once from Maven Central into a user cache.

The broker runs from the jars of `org.apache.kafka:kafka_2.13` (plus a logging
binding) as listed in `kafka/pom.xml`, shipped in this package; no tarball, no Docker. Maven does
the download and checksum work. The jars land in a temporary sibling directory
that is renamed into place, and a marker file written last records which pom and
version produced them, so a half-finished or stale download is never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from ._errors import DevstackError, ToolMissingError

log = logging.getLogger(__name__)

#: The Kafka release the dev stack and the tests run.
KAFKA_VERSION = "4.1.1"

_MARKER = ".complete"
#: Shipped as package data, so an installed wheel resolves the same jars as a checkout.
DEFAULT_POM = Path(
    str(resources.files(__package__ or "orchestrator.devstack").joinpath("kafka/pom.xml"))
)


def default_kafka_cache_dir(version: str = KAFKA_VERSION) -> Path:
    """`$XDG_CACHE_HOME/orchestrator-state/kafka-<version>/libs` (XDG default: ~/.cache)."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "orchestrator-state" / f"kafka-{version}" / "libs"


def _marker_text(pom: Path, version: str) -> str:
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    return f"kafka={version}\npom-sha256={digest}\n"


def kafka_jars_ready(
    cache_dir: Path, *, version: str = KAFKA_VERSION, pom: Path = DEFAULT_POM
) -> bool:
    """True when `cache_dir` holds a complete resolution of this pom at this version."""
    marker = cache_dir / _MARKER
    try:
        return marker.read_text() == _marker_text(pom, version)
    except FileNotFoundError:
        return False


def ensure_kafka_jars(
    cache_dir: Path | None = None,
    *,
    version: str = KAFKA_VERSION,
    pom: Path | None = None,
    mvn: str = "mvn",
) -> Path:
    """Return a directory holding Kafka `version`'s broker jars, running Maven if needed.

    Blocking (Maven may download ~60 MB on first use); call it via
    `asyncio.to_thread` from async code.
    """
    pom = (pom or DEFAULT_POM).resolve()
    if not pom.is_file():
        raise DevstackError(
            f"Kafka pom not found at {pom}; reinstall orchestrator-state (the pom ships in "
            "its wheel) or pass pom=..."
        )
    cache_dir = (cache_dir or default_kafka_cache_dir(version)).expanduser().resolve()
    if kafka_jars_ready(cache_dir, version=version, pom=pom):
        return cache_dir
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with (cache_dir.parent / f".{cache_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving the same jars
        if not kafka_jars_ready(cache_dir, version=version, pom=pom):
            _resolve(cache_dir, version=version, pom=pom, mvn=mvn)
    return cache_dir


def _resolve(cache_dir: Path, *, version: str, pom: Path, mvn: str) -> None:
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise ToolMissingError(
            mvn, f"Maven is needed once to download Apache Kafka {version}'s jars into {cache_dir}"
        )
    staging = cache_dir.with_name(f"{cache_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    argv = [
        mvn_path,
        "-q",
        "-B",
        "-f",
        str(pom),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    log.info("resolving Apache Kafka %s jars into %s", version, cache_dir)
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise DevstackError(
            f"resolving Apache Kafka {version} jars failed (exit {result.returncode}): "
            f"{' '.join(argv)}\n" + "\n".join(output)
        )
    (staging / _MARKER).write_text(_marker_text(pom, version))
    shutil.rmtree(cache_dir, ignore_errors=True)
    staging.rename(cache_dir)
