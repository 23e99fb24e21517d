"""The files Cordial's exports produce: an audience-trends CSV (a row per audience, a column per day)
and a contact export (CSV, JSON lines or TXT), deterministic, gzipped when the request asks."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
from typing import Any

from airflow_provider_exports_sandbox.cordial.records import Audience, ExportJob


def export_file(job: ExportJob, audiences: dict[str, Audience], account_contacts: int) -> bytes:
    """The file ``job`` delivers, built once and then kept on the job (``audiences``: the saved
    ones; ``account_contacts``: the contacts of an export without ``audience-key``)."""
    if job.file_cache is None:
        if job.kind == "trends":
            raw = trends_csv(job, audiences)
        else:
            raw = contacts_file(job, contact_count(job, audiences, account_contacts))
        job.file_cache = gzip.compress(raw, mtime=0) if job.compress else raw
    return job.file_cache


def contact_count(job: ExportJob, audiences: dict[str, Audience], account_contacts: int) -> int:
    """How many contacts a contact export holds: its audience's members, else the account's."""
    audience = audiences.get(job.audience_key) if job.audience_key else None
    return audience.members if audience is not None else account_contacts


def contact(index: int, field_name: str, audience: str | None) -> str:
    """The value of ``field_name`` for the ``index``-th contact of an export (deterministic)."""
    scope = audience or "all"
    if field_name == "email":
        return f"{scope.lower()}-{index:05d}@example.com"
    if field_name == "cID":
        return hashlib.sha256(f"{scope}/{index}".encode()).hexdigest()[:24]
    return f"{field_name}-{index}"


def trends_csv(job: ExportJob, audiences: dict[str, Audience]) -> bytes:
    """An audience-trends export's CSV: a count per audience and day, derived from the names."""
    # Vendor is silent on the trends CSV layout (vendor-apis README §2.1): sandbox choice:
    # header `audience,<YYYY-MM-DD>...`, a row per audience, a column per day, integer counts.
    days = [job.start + dt.timedelta(days=i) for i in range((job.end - job.start).days + 1)]
    out = io.StringIO()
    out.write(",".join(["audience", *(d.isoformat() for d in days)]) + "\r\n")
    for name in job.audiences:
        base = audiences[name].base_size if name in audiences else 10_000
        counts = []
        for day in days:
            digest = hashlib.sha256(f"{name}/{day.isoformat()}".encode()).digest()
            counts.append(str(base + int.from_bytes(digest[:2], "big") % max(1, base // 10)))
        out.write(",".join([_csv_field(name), *counts]) + "\r\n")
    return out.getvalue().encode()


def contacts_file(job: ExportJob, count: int) -> bytes:
    """A contact export of ``count`` contacts: their fields, then a 0/1 column per list."""
    # Lists: "a value of 1 if they are on the list or 0 if they are not" (the article); vendor
    # is silent on the column name: sandbox choice, the list ID; every third contact is on it.
    columns = [*job.fields, *(str(i) for i in job.lists)]
    out = io.StringIO()
    if job.export_type == "json":
        # Vendor is silent on the JSON file's layout: sandbox choice, JSON lines (an object per
        # contact, keyed by field).
        for n in range(count):
            record: dict[str, Any] = {f: contact(n, f, job.audience_key) for f in job.fields}
            record.update({str(i): 1 if (n + i) % 3 == 0 else 0 for i in job.lists})
            out.write(json.dumps(record) + "\n")
    else:
        # C-V2 SourceCE.delimiter: "Only used if ExportType is set to TXT"; CSV uses commas.
        if job.show_header:
            out.write(",".join(_csv_field(c) for c in columns) + "\r\n")
        for n in range(count):
            values = [contact(n, f, job.audience_key) for f in job.fields]
            values += ["1" if (n + i) % 3 == 0 else "0" for i in job.lists]
            out.write(",".join(_csv_field(v) for v in values) + "\r\n")
    return out.getvalue().encode()


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


def upload_to_server(dest: dict[str, Any], file_name: str, data: bytes) -> None:
    """Upload a delivered file over SFTP or FTP, as Cordial does: to ``server`` (``port``, else the
    protocol's), with ``username`` and ``password``, into ``path``.

    Vendor is silent on how ``path`` and the file name are joined: sandbox choice: one slash between
    them, the path as given (absolute, or relative to the login's folder).
    """
    target = f"{str(dest['path']).rstrip('/')}/{file_name}"
    if dest["type"] == "SFTP":
        import paramiko

        # a stand-in for Cordial's uploader: the test server's host key is not checked
        with paramiko.Transport((dest["server"], int(dest.get("port") or 22))) as transport:
            transport.connect(username=dest["username"], password=dest.get("password"))
            with paramiko.SFTPClient.from_transport(transport) as sftp:
                sftp.putfo(io.BytesIO(data), target)
        return
    import ftplib

    with ftplib.FTP() as ftp:
        ftp.connect(dest["server"], int(dest.get("port") or 21), timeout=30)
        ftp.login(dest["username"], dest.get("password") or "")
        ftp.storbinary(f"STOR {target}", io.BytesIO(data))


def upload_to_blob(connection_string: str, dest: dict[str, Any], file_name: str, data: bytes) -> None:
    """Write a delivered file into the Azure Blob container ``dest`` names, under its ``path``, with
    ``connection_string`` (standing in for the access the account granted Cordial).

    Vendor is silent on how ``path`` and the file name are joined: sandbox choice, as for servers,
    without a leading slash (a blob name has none).
    """
    from azure.storage.blob import BlobServiceClient

    name = f"{str(dest['path']).strip('/')}/{file_name}".lstrip("/")
    with BlobServiceClient.from_connection_string(connection_string) as service:
        service.get_blob_client(dest["container"], name).upload_blob(data, overwrite=True)
