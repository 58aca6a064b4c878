"""``orchestrator.connect`` is public and lazy: importing ``orchestrator`` loads no
Kafka or PostgreSQL driver; the name resolves when first used."""

from __future__ import annotations

import subprocess
import sys


def test_importing_orchestrator_loads_no_driver_until_connect_is_used() -> None:
    code = (
        "import sys, orchestrator\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('asyncpg', 'aiokafka')]\n"
        "assert callable(orchestrator.connect) and 'connect' in orchestrator.__all__\n"
        "assert issubclass(orchestrator.ServerUnreachable, Exception)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
