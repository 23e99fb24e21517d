"""Deterministic synthetic output files for the sandbox, and how they are served.

Files are built once into a cache dir by streaming (never whole in memory) via :func:`materialize`,
with a sidecar ``.meta.json`` (size, sha256, writer metadata such as row counts). They are served
like S3 presigned objects: :func:`sign_url` / :func:`verify_signed` give S3-style query
signatures with expiry, and :func:`ranged_file_response` serves GET/HEAD with single-range
``Range`` support in 1 MiB chunks. :func:`write_guests_jsonl_gz` and
:func:`write_sized_guests_jsonl_gz` produce gzipped JSON-lines guest profiles.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import tempfile
import threading
import uuid
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlencode

import anyio.to_thread
from starlette.responses import Response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

CHUNK_SIZE = 1024 * 1024
#: Bump when a writer's output changes, so stale cached files are not served.
GENERATOR_VERSION = "1"

# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------
_key_locks: dict[str, threading.Lock] = {}
_key_locks_guard = threading.Lock()
_SAFE_KEY = re.compile(r"[^A-Za-z0-9._/-]")


class _HashingWriter:
    """File-object wrapper computing sha256 and size of everything written through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def cache_path(cache_dir: Path, key: str) -> Path:
    safe = _SAFE_KEY.sub("_", key).strip("/")
    if not safe or ".." in Path(safe).parts:
        raise ValueError(f"bad cache key {key!r}")
    return Path(cache_dir) / f"v{GENERATOR_VERSION}" / safe


def materialize(cache_dir: Path, key: str, writer_fn: Callable[[BinaryIO], Any]) -> Path:
    """Build the file for ``key`` once (temp file + rename) and return its cached path.

    ``writer_fn`` streams into a binary file object; if it returns a dict, that is saved in the
    sidecar meta file next to ``size`` and ``sha256`` (see :func:`read_meta`).
    """
    path = cache_path(cache_dir, key)
    meta_path = path.with_name(path.name + ".meta.json")
    if path.exists() and meta_path.exists():
        return path
    with _key_locks_guard:
        lock = _key_locks.setdefault(str(path), threading.Lock())
    with lock:
        if path.exists() and meta_path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix="-" + path.name)
        try:
            with os.fdopen(fd, "wb", buffering=CHUNK_SIZE) as raw:
                hashing = _HashingWriter(raw)
                extra = writer_fn(hashing)  # type: ignore[arg-type]
            meta: dict[str, Any] = dict(extra) if isinstance(extra, dict) else {}
            meta.update(size=hashing.size, sha256=hashing.sha256.hexdigest())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        tmp_meta = meta_path.with_name(".tmp-" + meta_path.name)
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)
    return path


def read_meta(path: Path) -> dict[str, Any]:
    """The sidecar metadata of a materialized file (size, sha256 and the writer's extras)."""
    meta: dict[str, Any] = json.loads(path.with_name(path.name + ".meta.json").read_text())
    return meta


# --------------------------------------------------------------------------------------------
# Presigned URLs (S3 query-string style)
# --------------------------------------------------------------------------------------------
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


class SigningServer(Protocol):
    """What presigning needs of a server (a :class:`~.server.VendorServer` has it): its base URL,
    signing key and URL lifetime, and the signatures it issued and revoked."""

    signing_key: bytes
    url_ttl_seconds: float
    issued_signatures: set[str]
    revoked_signatures: set[str]

    @property
    def url(self) -> str: ...


def _signature(server: SigningServer, path: str, amz_date: str, expires: str, session_token: str) -> str:
    message = f"GET\n{path}\n{amz_date}\n{expires}\n{session_token}".encode()
    return hmac.new(server.signing_key, message, hashlib.sha256).hexdigest()


def sign_url(
    server: SigningServer, path: str, ttl_s: float | None = None, *, now: dt.datetime | None = None
) -> str:
    """A full presigned URL for ``path`` on ``server``, valid for ``ttl_s`` seconds (whole seconds)."""
    ttl = round(server.url_ttl_seconds if ttl_s is None else ttl_s)
    signed_at = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    amz_date = signed_at.strftime(_AMZ_DATE)
    # A fresh session token per URL (as with presigning under an assumed role) keeps every URL
    # distinct, so one re-fetched after expire_urls() is not the revoked one.
    session_token = secrets.token_urlsafe(16)
    signature = _signature(server, path, amz_date, str(ttl), session_token)
    server.issued_signatures.add(signature)
    query = urlencode(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"SANDBOXKEY/{signed_at:%Y%m%d}/us-east-1/s3/aws4_request",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(ttl),
            "X-Amz-Security-Token": session_token,
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": signature,
        }
    )
    return f"{server.url}{path}?{query}"


def signed_url_expiry(url_or_date: str, ttl_s: float) -> dt.datetime:
    """When a URL signed at ``X-Amz-Date`` = ``url_or_date`` with ``ttl_s`` stops working."""
    signed_at = dt.datetime.strptime(url_or_date, _AMZ_DATE).replace(tzinfo=dt.timezone.utc)
    return signed_at + dt.timedelta(seconds=round(ttl_s))


def s3_error(status: int, code: str, message: str, **extra: str) -> Response:
    """An S3-style XML error response."""
    parts = [f"<Code>{code}</Code>", f"<Message>{message}</Message>"]
    parts += [f"<{k}>{v}</{k}>" for k, v in extra.items()]
    parts.append(f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>")
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    return Response(body, status_code=status, media_type="application/xml")


def verify_signed(request: Request, server: SigningServer) -> Response | None:
    """``None`` when the request carries a valid unexpired signature of ``server``, else S3's
    400/403 answer."""
    q = request.query_params
    if "authorization" in request.headers and "X-Amz-Signature" in q:
        return s3_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
            "query string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
        )
    amz_date, expires, signature = q.get("X-Amz-Date"), q.get("X-Amz-Expires"), q.get("X-Amz-Signature")
    if not (amz_date and expires and signature and q.get("X-Amz-Algorithm")):
        return s3_error(403, "AccessDenied", "Access Denied")
    expected = _signature(server, request.url.path, amz_date, expires, q.get("X-Amz-Security-Token", ""))
    if not hmac.compare_digest(expected, signature):
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    try:
        expiry = signed_url_expiry(amz_date, float(expires))
    except ValueError:
        return s3_error(403, "AuthorizationQueryParametersError", "Invalid X-Amz-Date or X-Amz-Expires")
    now = dt.datetime.now(dt.timezone.utc)
    if signature in server.revoked_signatures or now >= expiry:
        return s3_error(
            403,
            "AccessDenied",
            "Request has expired",
            **{
                "X-Amz-Expires": expires,
                "Expires": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
    return None


# --------------------------------------------------------------------------------------------
# Ranged file serving
# --------------------------------------------------------------------------------------------
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end_inclusive)``, ``None`` for the whole file, or ``"unsatisfiable"``.

    Like S3: one range only; a malformed or multi-range header is ignored (whole file).
    """
    if not header:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, end


class FileRangeResponse(Response):
    """Streams ``length`` bytes of a file from ``start`` in 1 MiB chunks read off the event loop."""

    def __init__(
        self, path: Path, status: int, headers: dict[str, str], start: int, length: int, send_body: bool
    ) -> None:
        super().__init__(status_code=status)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.path = path
        self.start = start
        self.length = length
        self.send_body = send_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if not self.send_body or self.length == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        remaining = self.length
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.start)
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(f.read, min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        if remaining > 0:
            # The file shrank under us: end the stream short so the client notices.
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def ranged_file_response(
    request: Request,
    path: Path,
    media_type: str = "application/octet-stream",
    extra_headers: dict[str, str] | None = None,
) -> Response:
    """Serve ``path`` for GET/HEAD with S3-like single-range semantics (206, 416, Content-Range)."""
    stat = path.stat()
    size = stat.st_size
    etag = (
        '"'
        + hashlib.md5(f"{path}:{size}:{stat.st_mtime_ns}".encode(), usedforsecurity=False).hexdigest()
        + '"'
    )
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Type": media_type,
        "ETag": etag,
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        **(extra_headers or {}),
    }
    rng = parse_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if rng is not None and if_range is not None and if_range != etag:
        rng = None
    if rng == "unsatisfiable":
        resp = s3_error(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
            RangeRequested=request.headers.get("range", ""),
            ActualObjectSize=str(size),
        )
        resp.headers["Content-Range"] = f"bytes */{size}"
        resp.headers["Accept-Ranges"] = "bytes"
        return resp
    send_body = request.method != "HEAD"
    if rng is None:
        headers["Content-Length"] = str(size)
        return FileRangeResponse(path, 200, headers, 0, size, send_body)
    assert isinstance(rng, tuple)
    start, end = rng
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return FileRangeResponse(path, 206, headers, start, end - start + 1, send_body)


# --------------------------------------------------------------------------------------------
# Synthetic guest profiles (gzipped JSON lines)
# --------------------------------------------------------------------------------------------
_FIRST = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Farah",
    "Goran",
    "Hana",
    "Ivo",
    "Jun",
    "Kemi",
    "Luca",
    "Maya",
    "Nils",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Yuki",
]
_LAST = [
    "Abara",
    "Berg",
    "Costa",
    "Dubois",
    "Eze",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Silva",
    "Tan",
]
_COUNTRIES = ["US", "GB", "DE", "FR", "JP", "AU", "BR", "IN", "NL", "SE", "ES", "IT", "CA", "MX"]
_TIERS = ["bronze", "silver", "gold", "platinum"]
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def guest_row(rng: random.Random, index: int, seed: str) -> dict[str, Any]:
    """One synthetic guest profile; the field set is a sandbox choice (vendor layout unconfirmed)."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    created = _EPOCH + dt.timedelta(seconds=rng.randrange(0, 700 * 86400))
    modified = created + dt.timedelta(seconds=rng.randrange(0, 90 * 86400))
    return {
        "ref": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{index}")),
        "guestType": "customer" if rng.random() < 0.8 else "visitor",
        "firstName": first,
        "lastName": last,
        "email": f"{first.lower()}.{last.lower()}.{index}@example.com",
        "country": rng.choice(_COUNTRIES),
        "loyaltyTier": rng.choice(_TIERS),
        "lifetimeValue": round(rng.random() * 5000, 2),
        "createdAt": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "modifiedAt": modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


def write_guests_jsonl_gz(
    out: BinaryIO, *, seed: str, start: int, rows: int, compresslevel: int = 6
) -> dict[str, Any]:
    """Gzipped JSON lines of ``rows`` guests numbered from ``start``; deterministic in ``seed``."""
    rng = random.Random(f"{seed}/{start}")
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=compresslevel, mtime=0) as gz:
        batch: list[str] = []
        for i in range(start, start + rows):
            batch.append(json.dumps(guest_row(rng, i, seed), separators=(",", ":")))
            if len(batch) >= 5000:
                gz.write(("\n".join(batch) + "\n").encode())
                batch.clear()
        if batch:
            gz.write(("\n".join(batch) + "\n").encode())
    return {"rows": rows}


def write_sized_guests_jsonl_gz(out: BinaryIO, *, seed: str, target_bytes: int) -> dict[str, Any]:
    """A gzipped JSON-lines file of about ``target_bytes``, written at disk speed.

    Fast path for benchmarks: a pool of rows is rendered once with a fixed-width block marker in
    every guest ref; each block is the pool with the marker replaced by the block number (one C
    level ``bytes.replace``), so refs stay unique. Deflate level 0 (stored blocks) keeps the file
    a valid gzip whose size tracks ``target_bytes`` without spending CPU on compression.
    """
    marker = b"#BLOCK#######"
    rng = random.Random(seed)
    pool_rows: list[bytes] = []
    for i in range(2048):
        row = guest_row(rng, i, seed)
        row["ref"] = f"{marker.decode()}-{i:08d}"
        pool_rows.append(json.dumps(row, separators=(",", ":")).encode())
    pool = b"\n".join(pool_rows) + b"\n"
    rows_per_pool = len(pool_rows)
    overhead = 18  # gzip header + trailer; stored-block headers add ~5 bytes per 64 KiB
    payload = max(0, target_bytes - overhead)
    payload -= payload // 65535 * 5
    rows = 0
    written = 0
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=0, mtime=0) as gz:
        block = 0
        while written < payload:
            data = pool.replace(marker, b"%013d" % block)
            room = payload - written
            if len(data) > room:
                cut = data.rfind(b"\n", 0, room)
                if cut <= 0:
                    break
                data = data[: cut + 1]
                rows += data.count(b"\n")
            else:
                rows += rows_per_pool
            gz.write(data)
            written += len(data)
            block += 1
    return {"rows": rows}
