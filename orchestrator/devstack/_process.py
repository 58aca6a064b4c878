"""One child process, its log file, and a clean stop.

Why not `asyncio.create_subprocess_exec`: the servers outlive the coroutine that
starts them (a session fixture, a CLI run), and a plain `Popen` polled from the
loop does not depend on the loop's child watcher. Each child gets:

- its own session (process group), so the final SIGKILL reaches anything it forked;
- on Linux, PR_SET_PDEATHSIG=SIGKILL, so it dies with the Python process even when
  that process is killed without running finalizers (no orphan brokers);
- stdout and stderr appended to one log file, which is what `log_tail()` reads.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ._errors import ServiceStartError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def read_tail(path: Path, lines: int = 50) -> str:
    """The last `lines` lines of a text file ('' if it does not exist yet)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip("\n")
    except FileNotFoundError:
        return ""


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGKILL the child when its parent thread dies.

    Only used when spawning from the main thread: the death signal follows the
    thread that forked, not the process.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl  # resolved before fork

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return hook


class ManagedProcess:
    """A long-running child with a log file; `stop()` sends `stop_signal`, then SIGKILL."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        run_as: tuple[int, int] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_grace: float = 10.0,
        kill_expected: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.run_as = run_as
        self.stop_signal = stop_signal
        self.stop_grace = stop_grace
        #: The program is known not to exit on `stop_signal` in time: SIGKILL is routine, not news.
        self.kill_expected = kill_expected
        #: True once stop() had to SIGKILL the child.
        self.killed = False
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def returncode(self) -> int | None:
        """None while running (or never started); the exit status once it has exited."""
        return None if self._popen is None else self._popen.poll()

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        if self._popen is not None:
            raise RuntimeError(f"{self.argv[0]} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        uid, gid = self.run_as if self.run_as is not None else (None, None)
        with self.log_path.open("ab") as log_file:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
                user=uid,
                group=gid,
                extra_groups=None if self.run_as is None else [],
            )
        log.debug("started pid %s: %s", self._popen.pid, " ".join(self.argv))

    async def stop(self) -> int | None:
        """Stop the child and everything in its process group; return its exit status."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal(popen.pid, self.stop_signal)
            if not await self.wait_exit(self.stop_grace):
                log.log(
                    logging.DEBUG if self.kill_expected else logging.WARNING,
                    "%s (pid %s) still running %.0fs after %s; sending SIGKILL",
                    self.argv[0],
                    popen.pid,
                    self.stop_grace,
                    self.stop_signal.name,
                )
                self.killed = True
                self._killpg(popen.pid)
                await self.wait_exit(10.0)
        # Reap anything the child forked and left behind in its group.
        self._killpg(popen.pid)
        return popen.returncode

    async def kill(self) -> int | None:
        """SIGKILL the child and its whole process group (a crash, for fault tests), and
        reap it, so no zombie is left behind; return its exit status."""
        popen = self._popen
        if popen is None:
            return None
        self.killed = True
        self._killpg(popen.pid)
        await self.wait_exit(10.0)  # polling reaps the child
        return popen.returncode

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _killpg(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def wait_exit(self, within: float) -> bool:
        """Wait up to `within` seconds for the child to exit; True if it has."""
        popen = self._popen
        if popen is None:
            return True
        deadline = time.monotonic() + within
        while popen.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True


async def run_to_completion(
    service: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    time_limit: float,
    run_as: tuple[int, int] | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run a one-shot setup command (initdb, storage format), output appended to the log.

    Raises ServiceStartError with the log tail when it fails or times out.
    """
    proc = ManagedProcess(argv, log_path=log_path, run_as=run_as, env=env, stop_grace=2.0)
    proc.start()
    if not await proc.wait_exit(time_limit):
        await proc.stop()
        raise ServiceStartError(
            service,
            f"{Path(argv[0]).name} took longer than {time_limit:.0f}s",
            log_path,
            read_tail(log_path),
        )
    await proc.stop()
    if proc.returncode != 0:
        raise ServiceStartError(
            service,
            f"{' '.join(argv)} exited with status {proc.returncode}",
            log_path,
            read_tail(log_path),
        )
