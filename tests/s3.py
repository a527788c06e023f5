"""A real S3-compatible server for tests (moto's server mode, in its own process on 127.0.0.1).

The fixtures are registered in ``tests/conftest.py``; nothing here is mocked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CONN_ID = "orvideo_s3_test"
"""One id for the test process: Airflow caches a filesystem per connection id for the process."""
MP4_HEAD = b"\x00\x00\x00\x18ftypisom"
AWS_KEY_ID = "AKIAORVIDEOTESTKEY00"
AWS_SECRET = "orvideo-test-secret-never-logged"


@dataclass(frozen=True)
class S3:
    endpoint: str
    client: Any
    bucket: str
    conn_id: str

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def uploads_in_progress(self) -> list[str]:
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def moto_server(scratch: Path, log_path: Path) -> Iterator[str]:
    """moto's S3 server in its own process (its scratch files in ``scratch``); yields its URL."""
    port = _free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "TMPDIR": str(scratch)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{endpoint}/moto-api/", timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"moto server did not start (exit code {process.poll()})"
                        ) from None
                    time.sleep(0.1)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server per test process: Airflow caches a filesystem per connection id for the
    process, endpoint included."""
    with moto_server(
        tmp_path_factory.mktemp("moto_tmp"), tmp_path_factory.mktemp("moto_log") / "moto.log"
    ) as url:
        yield url


def aws_connection(s3_endpoint: str) -> dict[str, Any]:
    """An Airflow ``aws`` connection (as an ``AIRFLOW_CONN_*`` JSON value) for the S3 server."""
    return {
        "conn_type": "aws",
        "login": AWS_KEY_ID,
        "password": AWS_SECRET,
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }


def new_bucket(s3_endpoint: str) -> S3:
    """A fresh bucket on the S3 server, and a client for it."""
    boto3 = pytest.importorskip("boto3")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        region_name="us-east-1",
    )
    bucket = f"videos-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3(endpoint=s3_endpoint, client=client, bucket=bucket, conn_id=CONN_ID)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket, and an Airflow ``aws`` connection (environment) pointing at the server."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(aws_connection(s3_endpoint)))
    return new_bucket(s3_endpoint)
