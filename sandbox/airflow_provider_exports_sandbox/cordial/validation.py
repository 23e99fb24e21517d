"""What the Cordial sandbox accepts: every request is judged by Cordial's Swagger (C-V2, through
:func:`~airflow_provider_exports_sandbox.specs.cordial_swagger`: path, query parameters, JSON body)
before its route runs (:func:`spec_judge`); then what the spec says only in words or in its
documented error messages: destinations, audience-trends export configurations and contact export
requests, refused with Cordial's messages (vendor-apis README §2.3; C-V2 SourceCE and
ContactExportsError). Request bodies are JSON, or PHP-style form fields (C-ERR)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_exports_sandbox.cordial.records import (
    CONTACT_EXPORT_TYPES,
    DESTINATION_TYPES,
    NAME,
    PATHS,
    Audience,
    cordial_error,
    parse_date,
)
from airflow_provider_exports_sandbox.specs import Judge, cordial_swagger

#: The status of a request the spec refuses, per operation: the operation's documented 400 (its
#: destination/validation error) or, for the jobs list, its 422 "Filter incorrect" (C-V2).
#: Vendor is silent on GET /v2/jobs/{id}'s refusal of a bad query (the spec gives it 200 and
#: 404 only): chosen the jobs list's 422.
SPEC_REFUSAL_STATUS = {
    ("POST", PATHS["create"]): 400,
    ("POST", PATHS["contacts"]): 400,
    ("GET", PATHS["jobs"]): 422,
    ("GET", "/v2/jobs/{id}"): 422,
}


def spec_judge(authorized: Callable[[Request], bool]) -> Judge:
    """The Swagger check every request to the Cordial sandbox passes before its route runs.

    A request the route refuses anyway by Cordial's documents (a wrong key: 401; a body that is no
    JSON object or of another media type: C-ERR's 400 and 415) passes through to that answer. Refusals
    use Cordial's error envelope with ``GENERIC_ERROR_KEY`` (the errorKey of each operation's
    documented 400/422 example) and the validator's message (Vendor is silent on the wording).
    """

    async def judge(request: Request) -> Response | None:
        swagger = cordial_swagger()
        if swagger is None or not authorized(request):
            return None
        body: Any = None
        json_body = True
        if request.method in ("POST", "PUT", "PATCH"):
            read = await read_body(request)
            if isinstance(read, Response):
                return None
            body = read
            # Vendor is silent on how form fields are typed (C-ERR accepts them; every value is
            # text): chosen to judge their types by the route's checks only, not the schema's.
            json_body = request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
        problems = swagger.request_problems(
            request.method, request.url.path, dict(request.query_params), body, check_body=json_body
        )
        if not problems:
            return None
        template = swagger.template(request.url.path) or request.url.path
        # Vendor is silent on a path or method its spec lacks: chosen 404 RecordNotFound's shape.
        status = SPEC_REFUSAL_STATUS.get((request.method, template), 404)
        error_key = "GENERIC_ERROR_KEY" if status != 404 else "RECORD_NOT_FOUND"
        return cordial_error(status, error_key, problems[0].split(": ", 1)[1])

    return judge


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
    # The spec requires an object with a string `type` (C-V2 DestinationObject); an empty one is
    # refused with its documented message.
    if not isinstance(dest, dict) or not dest.get("type"):
        return "The destination.type field is required."
    kind = dest["type"]
    if kind not in DESTINATION_TYPES:
        # The spec lists the types in words only (no enum), upper case; the seed's examples write
        # "s3". Vendor is silent on whether another spelling is accepted (README §2.3): sandbox
        # choice: the spec's spelling only, taken as sent (never upper-cased), so a request in
        # another spelling fails in tests. The message: the same Laravel wording as the
        # documented "selected destination.transport" message.
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
        if dest.get("port") is None or dest.get("port") == "":
            # C-ATE: "required if type is FTP or SFTP". Vendor is silent on this message: sandbox
            # choice, the documented destination wording.
            return "The destination.port field is required."
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
    """The 400 message for a contact export request beyond what the spec's schema checks (C-V2
    SourceCE, ContactExportsError; ``audiences``: the saved audiences' names)."""
    fields = body.get("fields")
    if not fields:
        # The schema allows an empty list. Vendor is silent on it: sandbox choice, refused as
        # Laravel's `required` rule refuses an empty array, in the wording of the documented
        # destination messages.
        return "The fields field is required."
    name = body.get("name")
    if name is not None and not NAME.match(str(name)):
        return "The name may only contain letters, numbers, and dashes."
    if str(body.get("exportType", "csv")).lower() not in CONTACT_EXPORT_TYPES:
        # The spec lists "CSV, JSON, TXT" in words; Cordial's article sends "csv": both spellings
        # are the vendor's own, so either case is accepted.
        return "The selected export type is invalid."
    key = body.get("audience-key")
    if key is not None and str(key) not in audiences:
        return f"Audience with name: '{key}' does not exist."
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
