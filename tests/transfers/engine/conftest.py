"""Helpers for the engine tests: Sitecore jobs in the sandbox as engine sources, local files as sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_exports.hooks._http import HttpClient
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.transfers.engine import HttpSourceFile, OpenedStream, SourceFile

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)


@dataclass
class SitecoreJob:
    """One seeded Sitecore CDP export job and what the sandbox says its files are."""

    export_ref: str
    job_ref: str
    expected: list[tuple[str, int, str, int]]  # name, size, sha256, rows
    resolver_calls: list[str]
    sources: list[HttpSourceFile]


@pytest.fixture
def sitecore_job(sandbox) -> Callable[..., SitecoreJob]:
    """Seed a Sitecore export job and build the engine's sources for its presigned files."""
    from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

    made: list[tuple[SitecoreCDPHook, HttpClient]] = []

    def make(export: str = "loyalty_members", *, rows: int = 3000, rows_per_file: int = 1000,
             target_bytes: int | None = None, target_files: int = 1,
             retry: RetryPolicy = FAST_RETRY) -> SitecoreJob:
        sandbox.sitecore.add_export(export, rows_per_file=rows_per_file)
        job_ref = sandbox.sitecore.add_job(export, rows=rows, target_bytes=target_bytes, target_files=target_files)
        hook = SitecoreCDPHook(retry=FAST_RETRY)
        client = HttpClient("Sitecore CDP", retry=retry, guard=hook.guard)
        made.append((hook, client))
        calls: list[str] = []

        def resolver_for(name: str) -> Callable[[], str]:
            def resolve() -> str:
                calls.append(name)
                return next(f.url for f in hook.get_execution_output(job_ref).files if f.name == name)

            return resolve

        listing = hook.get_execution_output(job_ref)
        sources = [
            HttpSourceFile(client, f.name, None, resolver_for(f.name), url=f.url, attributes={"sizeKB": f.size_kb})
            for f in listing.files
        ]
        return SitecoreJob(export, job_ref, sandbox.sitecore.expected_files(job_ref), calls, sources)

    yield make
    for hook, client in made:
        client.close()
        hook.close()


class LocalFileSource(SourceFile):
    """A file on disk as a source (for formats the vendor sandboxes do not serve over HTTP)."""

    def __init__(self, path: Path, name: str | None = None) -> None:
        super().__init__(name or path.name, path.stat().st_size)
        self.path = path

    def open(self, offset: int, chunk_size: int = 1 << 20, *, if_range: str | None = None):
        @contextmanager
        def opened() -> Iterator[OpenedStream]:
            with self.path.open("rb") as f:
                f.seek(offset)
                yield OpenedStream(
                    iter(lambda: f.read(chunk_size), b""), self.path.stat().st_size, start=offset
                )

        return opened()
