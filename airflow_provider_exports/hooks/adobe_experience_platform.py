"""Adobe Experience Platform: IMS server-to-server tokens, profile export jobs, Catalog, Data Access.

Every Platform call carries ``Authorization: Bearer``, ``x-api-key`` (the client ID),
``x-gw-ims-org-id`` and ``x-sandbox-name``. Sources: vendor-apis README §3 and the Adobe OpenAPI
documents beside it (segmentation.yaml for ``/export/jobs``, catalog.yaml, data-access.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from airflow_provider_exports.exceptions import ExportConfigError, VendorAPIError
from airflow_provider_exports.hooks import _adobe_experience_platform_records as records
from airflow_provider_exports.hooks._auth import AuthScheme, ClientCredentialsAuth
from airflow_provider_exports.hooks._base import (
    AccessCheck,
    ConnectionFailure,
    ExportsVendorHook,
    FieldProblems,
    normalise_host,
)
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks._untrusted import (
    Answer,
    PageBudget,
    api_path,
    check_depth,
    describe,
    unusable_answer,
)

IMS_HOST = "https://ims-na1.adobelogin.com"
TOKEN_PATH = "/ims/token/v3"
PLATFORM_HOST = "https://platform.adobe.io"
DEFAULT_SCOPES = "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext"
PROFILE_UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"
SCHEMA_CONTENT_TYPE = "application/vnd.adobe.xed+json;version=1"
#: The target dataset's files as the seed's dataset request configures them ("It is important that
#: the dataset be configured correctly to ensure the export is successful": vendor-apis README §3.3);
#: Catalog's dataSetRequest.fileDescription.format enum has "parquet" (A-CAT).
FILE_DESCRIPTION = {"persisted": True, "containerFormat": "parquet", "format": "parquet"}

#: A-SEG's ``offset`` of the export jobs list: ``<creationTime>_<id>`` (``1540974701302_96``)
_OFFSET = re.compile(r"([0-9]{1,20})_([0-9]{1,20})")
_DIGITS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class AdobeAEPSettings:
    client_id: str
    client_secret: str = field(repr=False)
    ims_org_id: str
    sandbox_name: str
    scopes: str
    ims_host: str
    platform_host: str


class AdobeExperiencePlatformHook(ExportsVendorHook[AdobeAEPSettings]):
    """Adobe Experience Platform APIs used by profile exports.

    Connection: login = client ID, password = client secret; extras ``ims_org_id`` (``…@AdobeOrg``),
    ``sandbox_name``, optional ``scopes`` (comma-separated), ``ims_host``, ``platform_host``.

    :param adobe_aep_conn_id: the Airflow connection id.
    """

    vendor = records.VENDOR
    conn_name_attr = "adobe_aep_conn_id"
    default_conn_name = "adobe_aep_default"
    conn_type = "adobe_aep"
    hook_name = "Adobe Experience Platform"

    def __init__(
        self,
        adobe_aep_conn_id: str = default_conn_name,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(adobe_aep_conn_id, timeout=timeout, retry=retry)

    @classmethod
    def settings_from_connection(
        cls, login: str | None, password: str | None, extras: Mapping[str, Any]
    ) -> AdobeAEPSettings:
        problems = FieldProblems()
        if not login:
            problems.add(
                "login",
                "the Adobe client ID is missing; give the OAuth Server-to-Server credential's client ID",
            )
        if not password:
            problems.add(
                "password", "the Adobe client secret is missing; give that credential's client secret"
            )
        org = str(extras.get("ims_org_id") or "")
        if not org.endswith("@AdobeOrg"):
            problems.add(
                "extra.ims_org_id", f"{org!r} is not an IMS organization ID; give one ending in @AdobeOrg"
            )
        sandbox = str(extras.get("sandbox_name") or "")
        if not sandbox or sandbox != sandbox.lower():
            problems.add(
                "extra.sandbox_name", f"{sandbox!r}: give the all-lowercase sandbox name (e.g. prod)"
            )
        scopes = str(extras.get("scopes") or DEFAULT_SCOPES)
        if not all(s.strip() and " " not in s.strip() for s in scopes.split(",")):
            problems.add(
                "extra.scopes", f"{scopes!r}: give comma-separated scope names (e.g. {DEFAULT_SCOPES})"
            )
        ims_host = problems.check(
            lambda: normalise_host(extras.get("ims_host") or IMS_HOST, "extra.ims_host")
        )
        platform_host = problems.check(
            lambda: normalise_host(extras.get("platform_host") or PLATFORM_HOST, "extra.platform_host")
        )
        problems.raise_any()
        return AdobeAEPSettings(
            client_id=str(login),
            client_secret=str(password),
            ims_org_id=org,
            sandbox_name=sandbox,
            scopes=",".join(s.strip() for s in scopes.split(",")),
            ims_host=str(ims_host),
            platform_host=str(platform_host),
        )

    def auth_scheme(self, settings: AdobeAEPSettings) -> AuthScheme:
        return ClientCredentialsAuth(
            token_url=settings.ims_host + TOKEN_PATH,
            form={
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "scope": settings.scopes,
            },
            extra_headers={
                "x-api-key": settings.client_id,
                "x-gw-ims-org-id": settings.ims_org_id,
                "x-sandbox-name": settings.sandbox_name,
            },
        )

    def base_url(self, settings: AdobeAEPSettings) -> str:
        return settings.platform_host

    # -- Catalog

    def create_profile_dataset(self, name: str, *, description: str | None = None) -> str:
        """Create a dataset on the profile union schema, its files Parquet as the seed's request
        says (:data:`FILE_DESCRIPTION`); returns its id."""
        body: dict[str, Any] = {
            "name": name,
            "schemaRef": {"id": PROFILE_UNION_SCHEMA, "contentType": SCHEMA_CONTENT_TYPE},
            "fileDescription": dict(FILE_DESCRIPTION),
        }
        if description:
            body["description"] = description
        result = self.call("POST", f"{records.CATALOG}/dataSets", json=body, expected=(200, 201))
        # 201 with a one-element array such as ["@/dataSets/5b02..."]: the id is after the last "/".
        if not isinstance(result, list) or not result:
            url = self.url(f"{records.CATALOG}/dataSets")
            no_id = "dataset creation returned no id"
            raise unusable_answer(records.VENDOR, no_id, url=url, method="POST", status_code=201)
        return records.DATASET_ID.check(str(result[0]).rsplit("/", 1)[-1], "datasetId (Catalog's answer)")

    def find_datasets(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """Datasets named exactly ``name``, oldest first, as ``(id, dataset)``.

        Catalog filters on the ``name`` property (``GET /dataSets?property=name==...``), pages of at
        most 100 (``start``/``limit``), at most ``[exports] max_pages`` of them. Vendor is silent on
        whether that filter is exact: the names are compared here too. Vendor is silent on the order
        of equal names: ``orderBy=asc:created``.
        """
        found: list[tuple[str, dict[str, Any]]] = []
        pages = PageBudget.of(self, f"{records.CATALOG}/dataSets")
        start = 0
        while True:
            pages.spend()
            page = self.call(
                "GET",
                f"{records.CATALOG}/dataSets",
                params={
                    "property": f"name=={name}",
                    "properties": "name,schemaRef,fileDescription,created",
                    "orderBy": "asc:created",
                    "start": start,
                    "limit": 100,
                },
            ) or {}
            if not isinstance(page, Mapping):
                break
            found += [
                (records.DATASET_ID.check(k, "datasetId (Catalog's listing)"), dict(v))
                for k, v in page.items()
                if isinstance(v, Mapping) and v.get("name") == name
            ]
            if len(page) < 100:
                break
            start += len(page)
        return sorted(found, key=lambda item: records.epoch_seconds(item[1].get("created")) or 0.0)

    def get_or_create_profile_dataset(self, name: str, *, description: str | None = None) -> tuple[str, bool]:
        """The id of the dataset named ``name`` on the profile union schema, created if there is none;
        ``(id, created)``. A dataset of that name on another schema, or whose files are of another
        format than Parquet, is refused, not reused.

        Vendor is silent on whether a dataset without ``fileDescription`` takes a profile export
        (vendor-apis README §3.3: the current guide creates it so, the older one with the Parquet
        description): chosen to reuse one without it, as one with ``format`` ``parquet``."""
        for dataset_id, dataset in self.find_datasets(name):
            schema = _field(dataset, "schemaRef").get("id")
            if schema != PROFILE_UNION_SCHEMA:
                raise ExportConfigError(
                    "dataset_name",
                    f"dataset {dataset_id} is named {name!r} but is on schema {schema!r}, not the profile "
                    f"union schema {PROFILE_UNION_SCHEMA}; choose another name",
                )
            described = dataset.get("fileDescription")
            file_format = described.get("format") if isinstance(described, Mapping) else None
            if file_format not in (None, "", FILE_DESCRIPTION["format"]):
                raise ExportConfigError(
                    "dataset_name",
                    f"dataset {dataset_id} is named {name!r} but its files are {str(file_format)[:40]!r}, "
                    f"not {FILE_DESCRIPTION['format']!r} as a profile export writes them; choose another name",
                )
            return dataset_id, False
        return self.create_profile_dataset(name, description=description), True

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """One Catalog batch."""
        return records.unwrap_keyed(self.call("GET", records.batch_path(batch_id)), batch_id)

    # -- profile export jobs (segmentation.yaml)

    def create_export_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a profile export job from a ``CreateExportJobRequest`` body (see
        :func:`export_job_request`). Retried only when it provably was not received."""
        if not (body.get("destination") or {}).get("datasetId"):
            raise ExportConfigError("destination.datasetId", "is required")
        if not (body.get("schema") or {}).get("name"):
            raise ExportConfigError("schema.name", "is required (e.g. _xdm.context.profile)")
        job = self.call("POST", records.EXPORT_JOBS, json=dict(body))
        records.answered_job_id(job, self.url(records.EXPORT_JOBS), "POST")  # a retry finds the job
        return dict(job)

    def get_export_job(self, job_id: str | int) -> dict[str, Any]:
        path = records.export_job_path(job_id)
        return records.export_job_record(self.call("GET", path), self.url(path))

    def list_export_jobs(
        self, *, limit: int = 100, pages: list[dict[str, Any]] | None = None
    ) -> Iterator[dict[str, Any]]:
        """All export jobs, following ``link.next`` (its ``offset``) until it is empty; each page's
        ``page`` object is appended to ``pages`` when given.

        At most ``[exports] max_pages`` pages (``LimitExceeded``). A-SEG's offset is
        ``<creationTime>_<id>`` of a page's last job, in the order of ``page.sort`` (descending
        unless it says ``asc``): an offset that repeats an earlier one or goes back would loop, so
        it raises :class:`VendorAPIError`. Vendor is silent on other offset shapes: those are
        checked for repeats only.
        """
        params: dict[str, Any] = {"limit": limit}
        budget = PageBudget.of(self, records.EXPORT_JOBS)
        seen: set[str] = set()
        last: tuple[int, int] | None = None
        url = self.url(records.EXPORT_JOBS)
        answer = Answer(records.VENDOR, url, "the export jobs listing")
        while True:
            budget.spend()
            page = answer.record(self.call("GET", records.EXPORT_JOBS, params=params) or {}, lists=("records",))
            jobs = [records.export_job_record(job, url) for job in page.get("records") or []]
            if pages is not None:
                pages.append(dict(_field(page, "page")))
            yield from jobs
            next_link = _field(page, "link").get("next")
            next_link = next_link.strip() if isinstance(next_link, str) else ""
            offsets = parse_qs(urlsplit(next_link).query).get("offset") if next_link else None
            if not offsets or not jobs:
                return
            offset = offsets[0]
            if offset in seen:
                raise self._endless_listing(offset, "repeats the offset of an earlier page")
            seen.add(offset)
            shape = _OFFSET.fullmatch(offset)
            position = (int(shape[1]), int(shape[2])) if shape else None
            sort = str(_field(page, "page").get("sort") or "")
            if position is not None and last is not None:
                # A-SEG: "By default, records are sorted in descending order"
                order = "asc" if sort.strip().lower() == "asc" else "desc"
                if (position <= last) if order == "asc" else (position >= last):
                    raise self._endless_listing(offset, f"goes back in the listing's {order} order")
            if position is not None:
                last = position
            params["offset"] = offset

    def _endless_listing(self, offset: str, why: str) -> VendorAPIError:
        return unusable_answer(
            records.VENDOR,
            f"link.next offset {offset[:80]!r} {why}: the listing would not end, so it stops here",
            url=self.url(records.EXPORT_JOBS),
        )

    def find_export_job_since(self, dataset_id: str, created_since: float) -> dict[str, Any] | None:
        """The newest job into ``dataset_id`` created at or after ``created_since`` (epoch seconds)
        that is running or succeeded: the one a retried task reattaches to (a job that finished
        while the worker was dead still has its batches; a failed or cancelled one is not reused).

        The list is not filtered by status (the spec's filter has no ``PROCESSING``). Vendor is
        silent on whether the list is always newest first (its example answers ``page.sort``
        ``desc`` on ``createdTime``): the scan stops at the first older job only when a page says
        ``desc``, and reads every page otherwise.
        """
        pages: list[dict[str, Any]] = []
        for job in self.list_export_jobs(limit=50, pages=pages):
            created = records.epoch_seconds(job.get("creationTime"))
            if created is not None and created < created_since:
                if str(pages[-1].get("sort") or "").lower() == "desc":
                    return None
                continue
            if (
                created is not None
                and records.job_dataset_id(job) == dataset_id
                and str(job.get("status") or "").upper() in records.JOB_REATTACH_STATUSES
            ):
                return job
        return None

    def cancel_export_job(self, job_id: str | int) -> None:
        """Cancel a job; Adobe documents 200 with a body, 204 with a body and 204 without one."""
        self.call("DELETE", records.export_job_path(job_id), expected=(200, 202, 204))

    async def acancel_export_job(self, job_id: str | int) -> None:
        await self.acall("DELETE", records.export_job_path(job_id), expected=(200, 202, 204))

    # -- Data Access

    def _data_access_pages(self, path: str, pages: PageBudget) -> Iterator[dict[str, Any]]:
        """Entries of a paged Data Access listing: ``start``/``limit`` pages of 100 (the documented
        maximum), following ``_links.next``, each page counted against ``pages``."""
        start, answer = 0, Answer(records.VENDOR, self.url(path), "the Data Access listing")
        while True:
            pages.spend()
            page = self.call("GET", path, params={"start": start, "limit": 100}) or {}
            page = answer.record(page, lists=("data",))
            data = page.get("data") or []
            if not all(isinstance(entry, Mapping) for entry in data):
                raise answer.wrong("data is not a list of objects")
            yield from data
            if not data or not _field(_field(page, "_links"), "next").get("href"):
                return
            start += len(data)

    def batch_files(self, batch_id: str) -> list[records.DataAccessFile]:
        """Every downloadable file of a batch: the dataset file ids it lists, each followed through
        its directory entries (see :meth:`_walk_files`). The batch's listing reads at most
        ``[exports] max_pages`` pages, and so does the listing of each dataset file id it names."""
        path = api_path(records.BATCH_FILES, batch_id=records.BATCH_ID.check(batch_id, "batch_id"))
        seen: set[str] = set()
        files: list[records.DataAccessFile] = []
        for entry in self._data_access_pages(path, PageBudget.of(self, path)):
            listed = entry.get("dataSetFileId")
            file_id = records.DATASET_FILE_ID.check(listed, f"dataSetFileId (a file of batch {batch_id})")
            if file_id not in seen:
                files += self._walk_files(file_id, seen)
        return files

    def _walk_files(
        self, file_id: str, seen: set[str], pages: PageBudget | None = None, depth: int = 0
    ) -> Iterator[records.DataAccessFile]:
        """The files behind a checked dataset file id, following directory entries into further ids;
        ``pages`` and ``seen`` are the listing's, ``depth`` the directory levels followed to reach
        ``file_id``.

        Vendor is silent on the shape of a directory entry ("further dataSetFileId entries"): an
        entry with a ``dataSetFileId``, or whose ``_links.self.href`` names another
        ``/files/{id}`` without a ``path``, is followed; an entry with a ``name`` is a file. Each id
        is checked as a dataset file id and read once, so a listing that loops ends; the whole
        listing reads at most ``[exports] max_pages`` pages and ``[exports] max_listing_depth``
        levels of directories (``LimitExceeded``).
        """
        path = api_path(records.FILE, dataset_file_id=file_id)
        pages = pages or PageBudget.of(self, path)
        seen.add(file_id)
        for entry in self._data_access_pages(path, pages):
            if entry.get("name"):
                if not isinstance(entry["name"], str):
                    raise Answer(records.VENDOR, self.url(path), "the Data Access listing").wrong(
                        f"the name of a file of {file_id} is {describe(entry['name'])}, not text"
                    )
                length = str(entry.get("length"))
                size = int(length) if _DIGITS.fullmatch(length) else None
                yield records.DataAccessFile(file_id, entry["name"], size)
                continue
            child = entry.get("dataSetFileId") or _linked_file_id(entry)
            if not child:
                continue
            child = records.DATASET_FILE_ID.check(child, f"dataSetFileId (a directory entry of {file_id})")
            if child not in seen:
                check_depth(pages.what, depth + 1)
                yield from self._walk_files(child, seen, pages, depth + 1)

    def file_url(self, dataset_file_id: str, path: str) -> str:
        """The download URL of one file (``/files/{id}?path={name}``); no credential in it."""
        return self.url(records.file_path(dataset_file_id)) + "?" + urlencode({"path": path})

    # The token comes from IMS; this read proves the Platform host, org and sandbox headers.
    access_check = AccessCheck(records.EXPORT_JOBS, params={"limit": "1"})

    def connection_hint(self, settings: AdobeAEPSettings, failure: ConnectionFailure) -> str:
        if failure == "credentials_refused":
            return "Check login (the client ID), password (the client secret) and extra.scopes"
        if failure == "api_refused":
            return (
                f"IMS issued a token, but Platform refused the request: check extra.ims_org_id "
                f"({settings.ims_org_id}) and extra.sandbox_name ({settings.sandbox_name}), and that the "
                "credential's product profile may use that sandbox"
            )
        if failure == "auth_unreachable":
            return f"Check extra.ims_host ({settings.ims_host}) and this machine's network"
        return f"Check extra.platform_host ({settings.platform_host}) and this machine's network"


def _field(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``record[key]`` where it is an object, else an empty one (links that are not objects: none)."""
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _linked_file_id(entry: Mapping[str, Any]) -> str | None:
    """The dataset file id a directory entry links to (``.../files/{id}`` without ``path``)."""
    href = str(_field(_field(entry, "_links"), "self").get("href") or "")
    parts = urlsplit(href)
    if "/files/" not in parts.path or "path" in parse_qs(parts.query):
        return None
    return parts.path.rsplit("/files/", 1)[1].strip("/") or None
