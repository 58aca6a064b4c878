"""Read ``docker-compose.yml`` and the ``Dockerfile`` as Docker would, for the parity tests.

No Docker engine exists here, so the tests take what Docker would run — each service's
command, environment (image ``ENV`` + compose ``environment``, ``${VAR}`` interpolated)
and health check — and run it on loopback against the harness's servers. The host
names of the stack (``kafka:9092``, ``postgres:5432``, ``s3:8333``) are rewritten to
those servers; an address the stack does not serve is an error, so a compose change
that points a service at the wrong place fails the test.

``resolve_cli(argv)`` checks that an ``orchestrator-state ...`` command line names a
real command of the CLI with options it accepts, without running it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CLI = "orchestrator-state"
APP_SERVICES = ("init", "projector", "snapshotter", "supervisor", "api")
INFRA_SERVICES = ("kafka", "postgres", "s3")

_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class ComposeError(Exception):
    """The compose file or Dockerfile says something Docker would refuse or misrun."""


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = variables.get(name)
        empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op is not None and op.endswith("?") and empty:
            raise ComposeError(f"${{{name}}} is required: {arg}")
        if op is not None and op.endswith("-") and empty:
            return arg
        return value or ""

    return _VAR.sub(one, text)


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def load_compose(variables: Mapping[str, str]) -> dict[str, Any]:
    """The compose file with ``<<`` merges resolved and variables interpolated."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(_interpolate_tree(raw, variables))


def as_argv(value: str | list[str]) -> list[str]:
    """A compose ``command`` (a list, or a string split as a shell would)."""
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``KEY=value`` list) as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    """What Docker runs for a service's health check (``CMD`` or ``CMD-SHELL``)."""
    test = (service.get("healthcheck") or {}).get("test")
    if not test or service["healthcheck"].get("disable"):
        raise ComposeError("no health check")
    if isinstance(test, str):
        return ["sh", "-c", test]
    kind, *rest = test
    if kind == "CMD":
        return list(rest)
    if kind == "CMD-SHELL":
        return ["sh", "-c", " ".join(rest)]
    raise ComposeError(f"health check test {test!r} runs nothing")


@dataclass
class Dockerfile:
    """The final stage of the Dockerfile: what a container of the image starts with."""

    stages: int = 0
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)
    earlier_runs: list[str] = field(default_factory=list)
    """``RUN`` lines of the build stages before the last one."""


def _exec_form(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        return [str(v) for v in yaml.safe_load(text)]
    return ["sh", "-c", text]


def load_dockerfile() -> Dockerfile:
    """Parse the instructions this project uses (continuations joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lines.append(pending.strip())
        pending = ""
    out = Dockerfile()
    for line in lines:
        instruction, _, rest = line.partition(" ")
        match instruction.upper():
            case "FROM":
                # Only the last stage is the image; keep what the earlier ones ran.
                out = Dockerfile(stages=out.stages + 1, earlier_runs=out.earlier_runs + out.runs)
            case "ENV":
                out.env.update(_env_pairs(rest))
            case "USER":
                out.user = rest.strip()
            case "CMD":
                out.cmd = _exec_form(rest)
            case "ENTRYPOINT":
                out.entrypoint = _exec_form(rest)
            case "RUN":
                out.runs.append(rest)
            case "COPY":
                out.copies.append(rest)
            case "HEALTHCHECK":
                options = re.sub(r"--[a-z-]+=\S+\s*", "", rest).strip()
                if not options.upper().startswith("CMD "):
                    raise ComposeError(f"HEALTHCHECK {rest!r} runs no command")
                out.healthcheck = _exec_form(options[4:])
    return out


def _env_pairs(text: str) -> dict[str, str]:
    pairs = {}
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if not sep:
            raise ComposeError(f"ENV {text!r}: use KEY=value")
        pairs[key] = value
    return pairs


def shell_commands(argv: list[str]) -> list[list[str]]:
    """The commands an argv runs: itself, or each ``&&``-joined part of ``sh -c``."""
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    return [shlex.split(part) for part in argv[2].split("&&")]


def resolve_cli(argv: list[str]) -> str | None:
    """None when ``argv`` is an ``orchestrator-state`` command the CLI accepts as written;
    else the first word the CLI does not know (``"topics"``) or the parse error."""
    import typer

    from orchestrator.cli import app

    if not argv or argv[0] != CLI:
        raise ComposeError(f"{argv!r} is not an {CLI} command")
    command: Any = typer.main.get_command(app)
    args = argv[1:]
    path = [CLI]
    while isinstance(getattr(command, "commands", None), dict) and args:
        name = args[0]
        if name.startswith("-"):
            break
        sub = command.commands.get(name)
        if sub is None:
            return name
        path.append(name)
        command, args = sub, args[1:]
    try:
        command.make_context(" ".join(path), list(args))
    except Exception as exc:  # typer vendors click: match its exceptions by shape
        if type(exc).__name__ == "Exit":  # --help, --version
            return None
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return f"{' '.join(path)}: {message}"
    return None
