"""pytest fixtures for the vendor sandbox, S3 (moto) and PostgreSQL.

Registered as a ``pytest11`` entry point, so users who install the provider get them too. None is
autouse, and nothing here imports Airflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_exports.sandbox import Sandbox
    from airflow_provider_exports.sandbox.local_services import MotoServer, PostgresCluster


@pytest.fixture(scope="session")
def exports_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A started :class:`Sandbox` (all vendors) for the whole session."""
    from airflow_provider_exports.sandbox import Sandbox

    sb = Sandbox(cache_dir=tmp_path_factory.mktemp("exports-sandbox-cache"))
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def sandbox(exports_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The session sandbox after ``reset()``, its connections exported as ``AIRFLOW_CONN_*``."""
    exports_sandbox.reset()
    for name, value in exports_sandbox.airflow_env().items():
        monkeypatch.setenv(name, value)
    return exports_sandbox


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    """``moto_server`` as S3 on a free loopback port for the whole session."""
    from airflow_provider_exports.sandbox.local_services import MotoServer

    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class S3Bucket:
    """A fresh bucket on the session's moto server (``s3`` fixture)."""

    server: MotoServer
    bucket: str

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def client(self) -> Any:
        return self.server.client()

    def airflow_conn_env(self, conn_id: str = "aws_default") -> dict[str, str]:
        return self.server.airflow_conn_env(conn_id)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]

    def read(self, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def manifest(self, prefix: str = "") -> dict[str, Any]:
        """The ``_manifest.json`` a transfer committed under ``prefix``."""
        import json

        key = f"{prefix.strip('/')}/_manifest.json" if prefix.strip("/") else "_manifest.json"
        manifest: dict[str, Any] = json.loads(self.read(key))
        return manifest

    def committed(self, prefix: str = "") -> dict[str, str]:
        """The files of the run committed under ``prefix``: their source names and object keys."""
        return {f["name"]: f["location"] for f in self.manifest(prefix)["files"]}


@pytest.fixture
def s3(moto_s3: MotoServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> S3Bucket:
    """A fresh bucket for this test, with ``AIRFLOW_CONN_AWS_DEFAULT`` pointing at moto."""
    import re
    import uuid

    for name, value in moto_s3.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") or "test"
    bucket = f"{stem}-{uuid.uuid4().hex[:8]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    return S3Bucket(moto_s3, bucket)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private throwaway PostgreSQL cluster; skips only when the binaries are absent."""
    from airflow_provider_exports.sandbox.local_services import PostgresCluster

    if not PostgresCluster.available():
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install -y postgresql")
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
