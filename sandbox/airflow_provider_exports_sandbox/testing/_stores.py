"""What the kit's S3 and warehouse fixtures hand a test: a bucket on the local S3, a SQL warehouse."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_exports_sandbox.local_services import MotoServer

__all__ = ["S3Bucket", "Warehouse"]

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


@dataclass
class S3Bucket:
    """A fresh bucket on the session's local S3 (moto server)."""

    server: MotoServer
    bucket: str

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def client(self) -> Any:
        """A boto3 S3 client pointed at the local S3."""
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
        key = f"{prefix.strip('/')}/_manifest.json" if prefix.strip("/") else "_manifest.json"
        manifest: dict[str, Any] = json.loads(self.read(key))
        return manifest

    def committed(self, prefix: str = "") -> dict[str, str]:
        """The files of the run committed under ``prefix``: their source names and object keys."""
        return {f["name"]: f["location"] for f in self.manifest(prefix)["files"]}


@dataclass
class Warehouse:
    """A SQL database behind an Airflow connection: an SQLite file, or a PostgreSQL database."""

    conn_id: str
    kind: str  # "sqlite" or "postgres"
    path: Path | None = None  # SQLite: the database file
    uri: str | None = None  # PostgreSQL: postgresql://user@host:port/database

    def connect(self) -> Any:
        """A DB-API connection (sqlite3; psycopg2 or psycopg 3 for PostgreSQL)."""
        if self.kind == "sqlite":
            return sqlite3.connect(str(self.path))
        try:
            import psycopg2

            return psycopg2.connect(str(self.uri))
        except ImportError:
            import psycopg

            return psycopg.connect(str(self.uri))

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row a query returns."""
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql, params) if params else cur.execute(sql)
            return [tuple(row) for row in cur.fetchall()]
        finally:
            conn.close()

    def count(self, table: str) -> int:
        """The number of rows in ``table`` (a plain or schema-qualified name)."""
        if not _TABLE.fullmatch(table):
            raise ValueError(f"table: {table!r} is not a plain table name (letters, digits, _; schema.table)")
        quoted = ".".join(f'"{part}"' for part in table.split("."))
        return int(self.rows(f"SELECT count(*) FROM {quoted}")[0][0])
