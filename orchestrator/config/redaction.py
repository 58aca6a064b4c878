"""Redaction: secrets never reach output or logs.

A value is secret when its option's name says so (``password``, ``*_token``,
``*_key``, ``secret*``, key rings, credentials) or when it is a URL carrying a
password (``postgresql://user:PASSWORD@host/db``). ``redact`` walks settings
dumped to plain data; ``redact_text`` cleans free text such as an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

_SECRET_NAME = re.compile(
    r"(passw(or)?d|secret|token|credential|private|api_?key|(^|_)keys?$|(^|_)key_?ring)",
    re.IGNORECASE,
)
# scheme://user:password@host  →  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)", re.I)
# ...?password=x&sslpassword=y  or  password=x in a libpq key/value DSN
_PARAM_SECRET = re.compile(
    r"(?P<head>\b[\w.\-]*(?:password|secret|token|api_?key)[\w.\-]*\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,'\"]+)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Whether an option or variable called ``name`` holds a secret."""
    return bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """``text`` with URL passwords and ``password=...``-style values replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    return _PARAM_SECRET.sub(lambda m: m.group("head") + REDACTED, text)


def redact(data: Any, name: str = "") -> Any:
    """A copy of plain data (dicts, lists, scalars) with every secret value replaced."""
    if isinstance(data, Mapping):
        return {k: redact(v, str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact(v, name) for v in data]
    if data in (None, "") or isinstance(data, bool):
        return data
    if name and is_secret_name(name):
        return REDACTED
    if isinstance(data, str):
        return redact_text(data)
    return data
