"""What the Cordial sandbox keeps and answers with: its fixed key and paths, the saved audiences
and export jobs, ids and dates as Cordial writes them, and its error envelope."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import JSONResponse, Response

API_KEY = "sandbox-cordial-key"
PATHS = {
    "create": "/v2/audiencetrendsexport",
    "contacts": "/v2/contactexports",
    "jobs": "/v2/jobs",
    "job": "/v2/jobs/{id}",
    "file": "/_sandbox/files/{id}",
}
DESTINATION_TYPES = ("AWS", "FTP", "SFTP", "S3", "GCS", "AZUREBLOB")
JOB_STATUSES = ("Scheduled", "Pending", "Processing", "Throttled", "Failed", "Done")
# Vendor is silent on the jobName of trends exports (vendor-apis README §2.4: not in the enum):
# sandbox choice: "ExportAudienceTrends", following the Export* names of the other exporters.
JOB_NAME = "ExportAudienceTrends"
# C-V2's jobName enum: contact exports are "ExportContacts".
CONTACTS_JOB_NAME = "ExportContacts"
# C-V2 SourceCE.exportType: "Possible values: CSV, JSON, TXT" (the article's example sends "csv").
CONTACT_EXPORT_TYPES = ("csv", "json", "txt")
# Vendor is silent on the default page size of GET /v2/jobs (README §2.4): sandbox choice: 25.
DEFAULT_PER_PAGE = 25
STATISTIC_MAX_PER_PAGE = 25
# C-RL: the limit's period is "typically one minute for most of our endpoints".
RATE_PERIOD_SECONDS = 60.0
NAME = re.compile(r"^[A-Za-z0-9-]+$")
_FILTER_DAY = re.compile(r"[0-9]{2}-[0-9]{2}-[0-9]{4}")
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


def cordial_error(
    status: int, error_key: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """Cordial's error envelope (README §2.6, C-V2 definitions)."""
    return JSONResponse(
        {"error": True, "errorKey": error_key, "message": message}, status_code=status, headers=headers
    )


def object_id() -> str:
    """A 24-hex id shaped like a MongoDB ObjectId (time, random, counter), as in C-V2's examples."""
    counter = next(_counter) & 0xFFFFFF
    return f"{int(time.time()):08x}{os.urandom(5).hex()}{counter:06x}"


def parse_date(value: Any) -> dt.date | None:
    """ISO-8601 date or date-time, or ``MM-DD-YYYY`` as in C-JOBS' example; ``None`` if invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d", "%m-%d-%Y", "%m/%d/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None




def parse_filter_day(value: str, zone: str) -> dt.datetime | None:
    """A ``times[...]`` filter's value: a day as C-JOBS' only example writes it (``01-01-2018``),
    as the midnight that begins it in the account's time zone ``zone``; ``None`` if it is not one.

    Vendor is silent on the formats the filter takes and on its time zone (vendor-apis README §2.4):
    sandbox choice: the example's format alone, month first (``MM-DD-YYYY``); anything else is
    the documented 422 "Time value is incorrect".
    """
    if not _FILTER_DAY.fullmatch(value):
        return None
    try:
        day = dt.datetime.strptime(value, "%m-%d-%Y")
    except ValueError:
        return None
    return day.replace(tzinfo=ZoneInfo(zone))


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def time_matches(value: str | None, op: str, moment: dt.datetime) -> bool:
    if value is None:
        return False
    actual = dt.datetime.fromisoformat(value)
    return {
        "gt": actual > moment,
        "gte": actual >= moment,
        "lt": actual < moment,
        "lte": actual <= moment,
    }[op]


@dataclass
class Audience:
    name: str
    trends_enabled: bool = True
    base_size: int = 10_000
    #: how many contacts a contact export of this audience (``audience-key``) holds
    members: int = 50


@dataclass
class ExportJob:
    """One export job: an audience-trends export (``kind`` ``trends``) or a contact export (``contacts``)."""

    job_id: str
    kind: str
    name: str
    destination: dict[str, Any]
    created_mono: float
    created_wall: dt.datetime
    #: how long the job stays Scheduled, then Processing: the server's ``job_seconds`` at creation
    seconds: float = 1.0
    #: the server's ``job_reads`` at creation: the job moves on with reads of it, not with time
    reads_to_finish: int | None = None
    reads: int = 0
    # trends
    start: dt.date = dt.date.min
    end: dt.date = dt.date.min
    audiences: list[str] = field(default_factory=list)
    # contacts
    fields: list[str] = field(default_factory=list)
    lists: list[int] = field(default_factory=list)
    audience_key: str | None = None
    export_type: str = "csv"
    compress: bool = False
    show_header: bool = False
    # outcome
    fail_reason: str | None = None
    throttled: bool = False
    delivered: bool = False
    delivery_error: str | None = None
    file_cache: bytes | None = field(default=None, repr=False)

    @property
    def job_name(self) -> str:
        return JOB_NAME if self.kind == "trends" else CONTACTS_JOB_NAME

    @property
    def file_name(self) -> str:
        # Vendor is silent on the delivered file's name: sandbox choice: the export's `name` and
        # the type's extension; C-V2 SourceCE.compress: "with the file extension .gz added".
        extension = "csv" if self.kind == "trends" else self.export_type
        return f"{self.name}.{extension}" + (".gz" if self.compress else "")
