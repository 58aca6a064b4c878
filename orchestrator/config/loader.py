"""Load a configuration file (the seed's YAML blocks, as written) into ``Settings``.

Errors name the option and its file position, all of them at once; environment
variables prefixed ``ORCHESTRATOR_`` override the file (``__`` separates levels:
``ORCHESTRATOR_CHECKPOINTING__PERIODIC__INTERVAL=60``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.config._yaml import Location, Mark, PositionedDocument, load_positioned
from orchestrator.config.models import BACKEND_MODELS, Settings
from orchestrator.config.notices import find_notices
from orchestrator.events import OrchestratorStateError

log = logging.getLogger(__name__)
ENV_PREFIX = "ORCHESTRATOR_"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem or notice: the option's dotted path, where it stands, and why."""

    option: str
    mark: Mark | None
    message: str

    def __str__(self) -> str:
        where = f"{self.mark}: " if self.mark else ""
        return f"{where}{self.option}: {self.message}"


class ConfigError(OrchestratorStateError):
    """A configuration that cannot be used; ``issues`` lists every error found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("invalid configuration:\n" + "\n".join(f"  {i}" for i in issues))


@dataclass(frozen=True)
class LoadedConfig:
    """Valid settings plus the warnings about options accepted but not used."""

    settings: Settings
    warnings: list[ConfigIssue] = field(default_factory=list)


def _dotted(path: Location) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[Location, Any]]:
    out: list[tuple[Location, Any]] = []
    for key, raw in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = tuple(part.lower() for part in key[len(ENV_PREFIX) :].split("__"))
        try:
            out.append((path, load_positioned(raw, key).data if raw else raw))
        except yaml.YAMLError as exc:
            issue = _yaml_issue(exc, key)
            raise ConfigError([ConfigIssue(key, None, issue.message)]) from exc
    return out


def _set(data: dict[str, Any], path: Location, value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(str(part), {})
        if not isinstance(node, dict):
            return
    node[str(path[-1])] = value


def _validation_issues(
    exc: ValidationError, doc: PositionedDocument, prefix: Location = ()
) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        path = (*prefix, *err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown option (check its spelling and level)"
        issues.append(ConfigIssue(_dotted(path), doc.mark_of(path), message))
    return issues


def _blame_environment(issues: list[ConfigIssue], env_paths: list[Location]) -> list[ConfigIssue]:
    """An issue about an option set from the environment names its variable, not the file."""
    out = []
    for issue in issues:
        for path in env_paths:
            dotted = _dotted(path)
            if issue.option == dotted or issue.option.startswith(dotted + "."):
                variable = ENV_PREFIX + "__".join(str(p).upper() for p in path)
                issue = replace(issue, mark=None, message=f"{issue.message} (set by {variable})")
                break
        out.append(issue)
    return out


def _yaml_issue(exc: yaml.YAMLError, file: str) -> ConfigIssue:
    """The YAML error as one issue: where, and what the parser expected."""
    mark = getattr(exc, "problem_mark", None)
    where = Mark(file, mark.line + 1, mark.column + 1) if mark else None
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ": ".join(p for p in parts if p) or str(exc).splitlines()[0]
    return ConfigIssue("<yaml>", where, "invalid YAML: " + text)


def load_config(
    text: str, file: str = "<string>", environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Validate ``text``; raise ``ConfigError`` listing every error with its position."""
    try:
        doc = load_positioned(text, file)
        overrides = _env_overrides(os.environ if environ is None else environ)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_issue(exc, file)]) from exc
    if not isinstance(doc.data, dict):
        raise ConfigError([ConfigIssue("<root>", doc.mark_of(()), "expected a mapping")])
    data = dict(doc.data)
    for path, value in overrides:
        _set(data, path, value)

    issues = [
        ConfigIssue(_dotted(path), doc.mark_of(path), rule.message)
        for rule, path in find_notices(data)
    ]
    warnings: list[ConfigIssue] = []  # none: every option acts or is refused
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        issues.extend(_validation_issues(exc, doc))
    if settings is not None and settings.state_management.backend is None:
        if "config" in settings.state_management.model_fields_set:
            where = ("state_management", "config")
            issues.append(
                ConfigIssue(
                    _dotted(where),
                    doc.mark_of(where),
                    "needs state_management.backend to say which backend it configures "
                    "(memory, filesystem, postgresql, redis or s3)",
                )
            )
    if settings is not None and settings.state_management.backend is not None:
        backend = BACKEND_MODELS[settings.state_management.backend]
        try:
            backend.model_validate(settings.state_management.config)
        except ValidationError as exc:
            issues.extend(_validation_issues(exc, doc, ("state_management", "config")))
    if issues or settings is None:
        raise ConfigError(_blame_environment(issues, [path for path, _ in overrides]))
    for warning in warnings:
        log.warning("%s", warning)
    return LoadedConfig(settings=settings, warnings=warnings)


def load_config_file(path: Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """``load_config`` for a file; a missing file is a ``ConfigError`` naming it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, f"cannot read: {exc.strerror}")]) from exc
    return load_config(text, str(path), environ)
