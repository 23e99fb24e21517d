"""Presigned URLs, Range semantics and the file cache of ``sandbox.synthetic``."""

from __future__ import annotations

import datetime as dt
import gzip
import io
from pathlib import Path

import httpx

from airflow_provider_exports_sandbox import Sandbox, synthetic


def seeded_file(sb: Sandbox) -> tuple[str, bytes]:
    sb.sitecore.add_export("ranged")
    ref = sb.sitecore.add_job("ranged", rows=300)
    [(name, *_)] = sb.sitecore.expected_files(ref)
    path = f"/sitecore-cdp-exports/{synthetic_client_key()}/ranged/{ref}/{name}"
    url = synthetic.sign_url(sb.sitecore, path, 60)
    return url, httpx.get(url).content


def synthetic_client_key() -> str:
    from airflow_provider_exports_sandbox.sitecore_cdp import CLIENT_KEY

    return CLIENT_KEY


def test_range_requests(sandbox: Sandbox) -> None:
    url, full = seeded_file(sandbox)
    size = len(full)
    head = httpx.head(url)
    assert head.status_code == 200
    assert head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Content-Length"] == str(size)
    assert head.content == b""
    cases = {"bytes=0-9": (0, 9), "bytes=100-": (100, size - 1), "bytes=-50": (size - 50, size - 1)}
    for header, (start, end) in cases.items():
        resp = httpx.get(url, headers={"Range": header})
        assert resp.status_code == 206
        assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert resp.content == full[start : end + 1]
    past_end = httpx.get(url, headers={"Range": f"bytes={size}-"})
    assert past_end.status_code == 416
    assert past_end.headers["Content-Range"] == f"bytes */{size}"
    clipped = httpx.get(url, headers={"Range": f"bytes={size - 5}-{size + 100}"})
    assert clipped.status_code == 206
    assert clipped.content == full[-5:]
    assert httpx.get(url, headers={"Range": "bytes=0-1,5-6"}).status_code == 200
    head_ranged = httpx.head(url, headers={"Range": "bytes=0-9"})
    assert (head_ranged.status_code, head_ranged.headers["Content-Length"]) == (206, "10")


def test_presigned_url_expiry_and_tampering(sandbox: Sandbox) -> None:
    url, _ = seeded_file(sandbox)
    path = httpx.URL(url).path
    old = synthetic.sign_url(
        sandbox.sitecore, path, 5, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=10)
    )
    expired = httpx.get(old)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "Request has expired" in expired.text
    tampered = httpx.get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=99999"))
    assert tampered.status_code == 403
    assert "SignatureDoesNotMatch" in tampered.text
    unsigned = httpx.get(url.split("?")[0])
    assert unsigned.status_code == 403


def test_materialize_builds_once(tmp_path: Path) -> None:
    calls = []

    def writer(out: io.BufferedWriter) -> dict[str, int]:
        calls.append(1)
        out.write(b"hello")
        return {"rows": 1}

    first = synthetic.materialize(tmp_path, "a/b.txt", writer)  # type: ignore[arg-type]
    second = synthetic.materialize(tmp_path, "a/b.txt", writer)  # type: ignore[arg-type]
    assert first == second
    assert first.read_bytes() == b"hello"
    assert len(calls) == 1
    meta = synthetic.read_meta(first)
    assert meta["rows"] == 1
    assert meta["size"] == 5
    assert not list(first.parent.glob(".tmp-*"))


def test_guest_files_are_deterministic(tmp_path: Path) -> None:
    def build(key: str) -> bytes:
        path = synthetic.materialize(
            tmp_path, key, lambda f: synthetic.write_guests_jsonl_gz(f, seed="s", start=0, rows=50)
        )
        return path.read_bytes()

    assert build("one.gz") == build("two.gz")
    assert len(gzip.decompress(build("one.gz")).splitlines()) == 50
