"""The README's "Use it from your code" block runs exactly as printed, as a user's
script, against freshly started servers: an empty database (no tables) and no topics
(the environment names fresh topics, as a user's own deployment would). The first run
fails in `summarize`; the resumed run reuses `fetch`'s output."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block() -> str:
    """The first ```python block of the "Use it from your code" section, verbatim."""
    text = README.read_text()
    section = text[text.index("## Use it from your code") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block in README's 'Use it from your code'"
    return match.group(1)


def test_the_block_is_short() -> None:
    code = [line for line in readme_block().splitlines() if line.strip()]
    assert len(code) <= 25
    assert code[0].startswith("# pip install orchestrator-state")


async def test_the_readme_block_runs_as_printed(
    services: Any, make_database: Any, tmp_path: Path
) -> None:
    dsn = await make_database(migrated=False)
    prefix = f"readme-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **services.as_env(),
        "DATABASE_URL": dsn,
        "ORCHESTRATOR_STATE_MANAGEMENT__EVENT_STORE__TOPICS__PIPELINE_EVENTS": f"{prefix}.p",
        "ORCHESTRATOR_STATE_MANAGEMENT__EVENT_STORE__TOPICS__SHARED_EVENTS": f"{prefix}.s",
    }
    script = tmp_path / "app.py"
    script.write_text(readme_block())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 240)
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, stderr[-3000:]
    assert stdout.count("fetching pages") == 1, stdout
    assert "3 pages summarized - reused: ('fetch',)" in stdout, stdout
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT status FROM pipeline_states")
        assert row is not None and row["status"] == "completed"
    finally:
        await conn.close()
