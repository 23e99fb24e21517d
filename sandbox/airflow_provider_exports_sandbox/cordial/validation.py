"""What the Cordial sandbox accepts: request bodies (JSON, or PHP-style form fields), destinations,
audience-trends export configurations and contact export requests, refused with Cordial's
messages (vendor-apis README §2.3; C-V2 SourceCE and ContactExportsError)."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_exports_sandbox.cordial.records import (
    CONTACT_EXPORT_TYPES,
    DESTINATION_TYPES,
    NAME,
    Audience,
    cordial_error,
    parse_date,
)


async def read_body(request: Request) -> dict[str, Any] | Response:
    """The body of a request as a dict, or Cordial's answer to a body it cannot read."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body: Any
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return cordial_error(400, "INVALID_JSON_PROVIDED", "Invalid JSON provided")
    elif content_type == "application/x-www-form-urlencoded":
        body = nest_form(list((await request.form()).multi_items()))
    else:
        return cordial_error(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Unsupported Media Type: Content-Type header must be application/json or "
            "application/x-www-form-urlencoded.",
        )
    if not isinstance(body, dict):
        return cordial_error(400, "INVALID_JSON_PROVIDED", "Invalid JSON provided")
    return body


def destination_error(dest: Any, *, saved_keys: Collection[str], s3_iam_role: bool) -> str | None:
    """The 400 message for a destination (``saved_keys``: the account's SFTP keys; ``s3_iam_role``:
    whether the account may deliver to S3 without keys)."""
    if not isinstance(dest, dict) or not dest.get("type"):
        return "The destination.type field is required."
    kind = str(dest["type"]).upper()
    if kind not in DESTINATION_TYPES:
        # Vendor is silent on an unknown type's message (README §2.3): sandbox choice: the
        # same Laravel wording as the documented "selected destination.transport" message.
        return "The selected destination.type is invalid."

    def missing(name: str) -> bool:
        value = dest.get(name)
        return value is None or (isinstance(value, str) and not value.strip())

    if kind in ("FTP", "SFTP"):
        if missing("server"):
            return "The destination.server field is required."
        if missing("username"):
            return "The destination.username field is required."
        if missing("password") and not (kind == "SFTP" and not missing("savedKey")):
            return "Parameter password is not set"
        if kind == "SFTP" and not missing("savedKey") and dest["savedKey"] not in saved_keys:
            # C-V2 ContactExportsError lists this message.
            return f"SSH key with such Name/ID: {dest['savedKey']} does not exist."
    if kind == "S3":
        # "Required if destination is S3 and IAM role is not configured" (C-V2): the sandbox
        # account has no IAM role unless `s3_iam_role` is set.
        keys = () if s3_iam_role else ("aws_access_key_id", "aws_secret_access_key")
        for name in (*keys, "aws_bucket", "aws_region"):
            if missing(name):
                return f"The destination.{name.replace('_', ' ')} field is required."
    if kind == "GCS" and missing("gcs_bucket"):
        return "The destination.gcs bucket field is required."
    if kind == "AZUREBLOB":
        for name in ("account", "container"):
            if missing(name):
                return f"The destination.{name} field is required."
    if kind != "AWS" and missing("path"):
        return "The destination.path field is required."
    return None


def config_error(body: dict[str, Any], audiences: dict[str, Audience]) -> str | None:
    """The 406 message for an audience-trends export's configuration (``audiences``: the saved ones)."""
    name = body.get("name")
    if not isinstance(name, str) or not name:
        return "Field 'name' should be provided."
    if not NAME.match(name):
        # Vendor is silent on this message (C-ATE: "may only contain letters, numbers, and
        # dashes"): sandbox choice: a 406 in the documented config-error style.
        return "Field 'name' may only contain letters, numbers, and dashes."
    requested = body.get("audiences")
    if not isinstance(requested, list) or not requested:
        return "Field 'audiences' should be provided."
    start_raw, end_raw = body.get("selected_timeframe_start"), body.get("selected_timeframe_end")
    # Vendor is silent on whether the timeframe may be left out entirely (README §2.3):
    # sandbox choice: both are required.
    if start_raw in (None, "") or end_raw in (None, ""):
        return "Both fields 'selected_timeframe_start' and 'selected_timeframe_end' should be present."
    start, end = parse_date(start_raw), parse_date(end_raw)
    if start is None:
        return "The 'selected_timeframe_start' is invalid. ISO-8601 is a recommended format."
    if end is None:
        return "The 'selected_timeframe_end' is invalid. ISO-8601 is a recommended format."
    if end < start:
        return "'selected_timeframe_end' cannot be in past in comparison with 'selected_timeframe_start'"
    for audience in requested:
        found = audiences.get(str(audience))
        if found is None:
            return f"Audience '{audience}' does not exist."
        if not found.trends_enabled:
            return f"For Audience '{audience}' analytics disabled."
    return None


def contacts_error(body: dict[str, Any], audiences: Collection[str]) -> str | None:
    """The 400 message for a contact export request (C-V2 SourceCE, ContactExportsError;
    ``audiences``: the saved audiences' names)."""
    # Vendor is silent on the messages for missing required fields: sandbox choice, the same
    # Laravel wording as the documented destination messages.
    fields, account = body.get("fields"), body.get("accountId")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        return "The fields field is required."
    if isinstance(account, bool) or not isinstance(account, int):
        # Vendor is silent on which account ids are accepted: any integer.
        return "The accountId field is required."
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not NAME.match(name)):
        return "The name may only contain letters, numbers, and dashes."
    if str(body.get("exportType", "csv")).lower() not in CONTACT_EXPORT_TYPES:
        return "The selected export type is invalid."
    lists = body.get("lists", [])
    if not isinstance(lists, list) or not all(
        isinstance(i, (int, float)) and not isinstance(i, bool) for i in lists
    ):
        # Vendor is silent on this message (C-V2: list items are numbers): sandbox choice.
        return "The selected lists are invalid."
    key = body.get("audience-key")
    if key is not None and str(key) not in audiences:
        return f"Audience with name: '{key}' does not exist."
    for flag in ("compress", "showHeader"):
        if flag in body and not isinstance(body[flag], bool):
            # Vendor is silent (C-V2 types both as boolean): sandbox choice.
            return f"The {flag} field must be true or false."
    return None


def nest_form(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """PHP-style form fields (``destination[type]=S3``, ``audiences[]=a``) to nested JSON."""
    out: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(value, str):
            continue
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = parts[i + 1] if not last else None
            if part == "[]":
                if isinstance(node, list):
                    node.append(value)
                break
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if nxt == "[]" else {})
    # Indexed lists (audiences[0]=a) arrive as dicts with numeric keys.
    for key, value in list(out.items()):
        if isinstance(value, dict) and value and all(k.isdigit() for k in value):
            out[key] = [value[k] for k in sorted(value, key=int)]
    return out
