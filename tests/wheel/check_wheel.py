"""The wheel, as a user gets it: built, installed into a new venv, used from their project.

``python tests/wheel/check_wheel.py`` (``make wheel-test``; ``.ci/run`` runs it):

1. builds the wheel from this checkout (``pip wheel --no-deps``) and checks that it adds
   exactly one top-level import package, ``orchestrator`` (no ``bench``, ``events``...);
2. installs it, not editable, with the ``embedded`` extra, into a new virtual environment
   in a temporary directory (pip's cache makes this quick after the first time);
3. in a temporary project that has its own ``events/`` and ``bench/`` packages, imports
   those and ``orchestrator`` side by side, runs ``orchestrator-state --version``, every
   command's ``--help`` (the Typer tree of the installed package, walked) and
   ``orchestrator-state demo`` to completion: a worker SIGKILLed mid-task, resumed.

Standard library only; prints each check; exits non-zero at the first failure. Nothing
is read from the checkout after the build: the installed copy must stand alone. Set
``WHEEL_TEST_KEEP=1`` to keep the temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 900


class CheckFailed(Exception):
    """One check did not hold; the message says which and shows the output."""


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def ok(text: str) -> None:
    print(f"    ok: {text}", flush=True)


def run(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; a non-zero exit fails the check with the command's output."""
    proc = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise CheckFailed(
            f"`{' '.join(argv)}` exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user who activated the new venv (nothing of the checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["COLUMNS"] = "200"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "S3_ENDPOINT_URL"):
        env.pop(name, None)  # the demo starts its own servers
    return env


def build_wheel(out: Path) -> Path:
    step("build the wheel (pip wheel --no-deps)")
    build_tmp = out / "build-src"
    # Build from a copy of the tracked files, so the build leaves nothing in the checkout.
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, files):
        rel = raw.decode()
        src = REPO / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        dst = build_tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    dist = out / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), "."]
    run(pip, cwd=build_tmp, env=env)
    (wheel,) = dist.glob("orchestrator_state-*.whl")
    ok(wheel.name)
    return wheel


def check_top_level(wheel: Path) -> None:
    step("the wheel adds one top-level import package: orchestrator")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    if tops != {"orchestrator"}:
        raise CheckFailed(f"top-level entries in the wheel: {sorted(tops)}")
    needed = [
        "orchestrator/py.typed",
        "orchestrator/schemas/current/Envelope.avsc",
        "orchestrator/projections/migrations/0001_read_models.sql",
        "orchestrator/devstack/kafka/pom.xml",
        "orchestrator/bench/__init__.py",
    ]
    missing = [n for n in needed if n not in names]
    if missing:
        raise CheckFailed(f"missing from the wheel: {missing}")
    ok(f"{len(names)} files, top level {sorted(tops)}; bench is orchestrator.bench")


def make_venv(root: Path, wheel: Path) -> Path:
    step("new virtual environment; pip install '<wheel>[embedded]' (not editable)")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=root, env=dict(os.environ))
    env = clean_env(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[embedded]"],
        cwd=root,
        env=env,
        timeout=1200,
    )
    ok(str(venv))
    return venv


def make_user_project(root: Path) -> Path:
    """A user's project whose own packages are called ``events`` and ``bench``."""
    project = root / "user-project"
    for name in ("events", "bench"):
        pkg = project / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f'MARKER = "the user\'s own {name}"\n')
    return project


SIDE_BY_SIDE = textwrap.dedent(
    """
    import importlib.metadata as md, pathlib, sys
    import bench, events
    import orchestrator, orchestrator.bench, orchestrator.events
    from orchestrator.events.codec import default_codec
    site = pathlib.Path(sys.prefix).resolve()
    assert events.MARKER == "the user's own events", events.__file__
    assert bench.MARKER == "the user's own bench", bench.__file__
    here = pathlib.Path.cwd().resolve()
    assert pathlib.Path(events.__file__).resolve().is_relative_to(here), events.__file__
    for mod in (orchestrator, orchestrator.events, orchestrator.bench):
        path = pathlib.Path(mod.__file__).resolve()
        assert path.is_relative_to(site), f"{mod.__name__} from {path}, not {site}"
    assert orchestrator.events is not events and orchestrator.bench is not bench
    default_codec()  # reads the Avro schemas with importlib.resources
    files = md.distribution("orchestrator-state").files or []
    tops = {f.parts[0] for f in files if f.parts[0] != ".." and not f.parts[0].endswith(
        ".dist-info")}
    assert tops == {"orchestrator"}, tops
    print("events:", events.__file__)
    print("orchestrator:", orchestrator.__file__)
    """
)

HELP_WALK = textwrap.dedent(
    """
    import typer
    from typer.testing import CliRunner
    from orchestrator.cli import app
    root = typer.main.get_command(app)
    def walk(cmd, path):
        yield path
        if isinstance(getattr(cmd, "commands", None), dict):  # a group (typer vendors click)
            for name, sub in sorted(cmd.commands.items()):
                if not getattr(sub, "hidden", False):
                    yield from walk(sub, [*path, name])
    runner = CliRunner()
    failed = []
    paths = list(walk(root, []))
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], prog_name="orchestrator-state",
                               env={"COLUMNS": "120"})
        if result.exit_code != 0 or "Usage:" not in result.output:
            failed.append((path, result.exit_code, result.output[-800:], repr(result.exception)))
    for path, code, out, exc in failed:
        print("FAILED:", " ".join(path) or "(root)", code, exc, out, sep="\\n")
    print(f"{len(paths)} commands, {len(failed)} failed")
    raise SystemExit(1 if failed else 0)
    """
)


def check_project(venv: Path, project: Path) -> None:
    env = clean_env(venv)
    python = str(venv / "bin" / "python")
    cli = str(venv / "bin" / "orchestrator-state")

    step("import the user's events/bench and orchestrator side by side")
    out = run([python, "-c", SIDE_BY_SIDE], cwd=project, env=env).stdout
    ok(out.strip().replace("\n", "; "))

    step("orchestrator-state --version")
    out = run([cli, "--version"], cwd=project, env=env).stdout.strip()
    expected = run(
        [python, "-c", "import importlib.metadata as m; print(m.version('orchestrator-state'))"],
        cwd=project,
        env=env,
    ).stdout.strip()
    if expected not in out:
        raise CheckFailed(f"--version printed {out!r}, expected the version {expected!r}")
    ok(out)

    step("--help of every command (the installed Typer tree, walked)")
    run([cli, "--help"], cwd=project, env=env)
    out = run([python, "-c", HELP_WALK], cwd=project, env=env).stdout.strip()
    ok(out.splitlines()[-1])

    step("orchestrator-state demo (a worker SIGKILLed mid-task, then resumed)")
    began = time.monotonic()
    out = run([cli, "demo"], cwd=project, env=env, timeout=DEMO_TIMEOUT_S).stdout
    for needle in ("SIGKILL", "recovered"):
        if needle not in out:
            raise CheckFailed(f"demo output lacks {needle!r}:\n{out[-4000:]}")
    ok(f"demo completed in {time.monotonic() - began:.0f}s: crash and resume seen")
    leftovers = sorted(p.name for p in project.iterdir())
    if leftovers != ["bench", "events"]:
        raise CheckFailed(f"the commands left files in the user's project: {leftovers}")


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="orchestrator-wheel-test-"))
    keep = os.environ.get("WHEEL_TEST_KEEP") == "1"
    began = time.monotonic()
    try:
        wheel = build_wheel(root)
        check_top_level(wheel)
        venv = make_venv(root, wheel)
        check_project(venv, make_user_project(root))
    except (CheckFailed, subprocess.TimeoutExpired) as exc:
        print(f"WHEEL TEST FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"wheel test passed in {time.monotonic() - began:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
