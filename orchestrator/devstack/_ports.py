"""Free loopback ports.

Servers are started on ports the OS hands out (bind to port 0), so several test
sessions and a `services up` can run side by side on one machine. All the ports
one server needs are taken in one call while holding every socket open, so the
same port is never handed out twice to the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return `count` distinct TCP ports that are free on `host` right now."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port(host: str = LOOPBACK) -> int:
    """Return one TCP port that is free on `host` right now."""
    return free_ports(1, host)[0]


async def port_accepts(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port (a cheap first readiness check)."""
    try:
        async with asyncio.timeout(0.5):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
