"""Backups under test: a real S3-compatible server on loopback (moto's server mode), real folders."""

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from apps.backups.s3 import S3Storage
from apps.backups.storage import LocalStorage

S3_CREDENTIALS = {"access_key": "testing", "secret_key": "testing-secret", "region": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server started once per test process."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket for the test (the server lives for the session)."""
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50].strip("-")
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_CREDENTIALS["region"],
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
    )
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_storage(s3_server: str, s3_bucket: str) -> S3Storage:
    return S3Storage(name="s3", bucket=s3_bucket, prefix="opsportal", endpoint_url=s3_server, **S3_CREDENTIALS)


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> LocalStorage | S3Storage:
    """Each storage kind in turn: the pipeline and the manifest must behave the same on both."""
    return request.getfixturevalue(f"{request.param}_storage")
