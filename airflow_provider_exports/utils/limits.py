"""The bounds on what comes from outside, each with one Airflow setting that raises it.

A vendor's answers (bodies, pages, file names and contents) and what earlier runs stored
(manifests) are input: the provider reads at most this much of each before it stops with
:class:`~airflow_provider_exports.exceptions.LimitExceeded`, naming the bound and its setting.
Every bound is an option of the ``[exports]`` section of Airflow's configuration
(``AIRFLOW__EXPORTS__MAX_JSON_BODY_BYTES=...``), read when it is used, so a deployment that
expects more raises it without a code change. The defaults are far above any answer the vendors
document and far below what would take a worker or the triggerer down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the provider info reads this module: it imports nothing of Airflow's at import
    from airflow_provider_exports.exceptions import LimitExceeded

SECTION = "exports"
MiB = 1 << 20


@dataclass(frozen=True)
class Limit:
    """One bound: its setting's name, default and meaning (the provider info and docs/security.md list them)."""

    name: str
    default: int
    description: str

    @property
    def value(self) -> int:
        """The bound in force: the ``[exports]`` setting when set (a positive integer), else the default."""
        from airflow.providers.common.compat.sdk import conf

        from airflow_provider_exports.exceptions import ExportConfigError

        try:
            raw = conf.get(SECTION, self.name, fallback=None)
        except Exception:  # no configuration to read (outside Airflow): the default
            raw = None
        if raw in (None, ""):
            return self.default
        try:
            value = int(str(raw).replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise ExportConfigError(f"[{SECTION}] {self.name}", f"{raw!r} is not a positive whole number")
        return value

    def exceeded(self, what: str, found: str, value: int | None = None) -> LimitExceeded:
        """The error for ``what`` going past this bound (``found`` says how far)."""
        from airflow_provider_exports.exceptions import LimitExceeded

        return LimitExceeded(what, self.name, self.value if value is None else value, found)


JSON_BODY = Limit(
    "max_json_body_bytes",
    64 * MiB,
    "Bytes of one JSON answer of a vendor API (after decompression), and of a manifest read back.",
)
ERROR_BODY = Limit(
    "max_error_body_bytes",
    64 * 1024,
    "Bytes of an error answer read for its message; the rest is not read.",
)
PAGES = Limit(
    "max_pages",
    1000,
    "Pages of one paged vendor listing (jobs, datasets, batch files) read before the listing is refused.",
)
LISTING_DEPTH = Limit(
    "max_listing_depth",
    16,
    "Levels of directories followed in an Adobe Data Access file listing.",
)
CSV_HEADER = Limit(
    "max_csv_header_bytes",
    1 * MiB,
    "Bytes of a CSV file's header row (an unclosed quote would otherwise make the whole file a header).",
)
JSON_LINE = Limit(
    "max_json_line_bytes",
    32 * MiB,
    "Bytes of one line of a JSON lines file.",
)
DECOMPRESSION_RATIO = Limit(
    "max_decompression_ratio",
    250,
    "Bytes a gzip file may inflate to per compressed byte (past its first 64 MiB): a gzip bomb stops there.",
)
FILE_BYTES = Limit(
    "max_file_bytes",
    5 * 1024 * 1024 * MiB,
    "Bytes of one export file whose size no listing gave (S3's largest object: 5 TiB).",
)

#: every bound above, in the order they are defined
ALL: tuple[Limit, ...] = tuple(value for value in dict(globals()).values() if isinstance(value, Limit))
#: bytes a gzip stream may inflate to before :data:`DECOMPRESSION_RATIO` applies
DECOMPRESSION_FLOOR = 64 * MiB


def provider_config() -> dict[str, object]:
    """The ``config`` entry of the provider info: the ``[exports]`` section and its options."""
    return {
        SECTION: {
            "description": "Bounds on what the provider reads from vendors and earlier runs "
            "(docs/security.md).",
            "options": {
                limit.name: {
                    "description": limit.description,
                    "version_added": "0.1.0",
                    "type": "integer",
                    "example": None,
                    "default": str(limit.default),
                }
                for limit in ALL
            },
        }
    }
