"""The vendors' published API documents, and the one validator of each that the stand-ins judge
requests by (and the test suites' request spies check the provider's requests with).

The documents are third-party files, not part of this distribution: they are looked up in the
directory named by ``EXPORTS_VENDOR_SPECS``, by default ``<repository root>/../shared/vendor-apis``
when it exists (``cordial/cordial-v2-openapi-original.json``, ``adobe-aep/{segmentation,catalog,
data-access}.yaml``). Without them, or without ``openapi-core`` for Adobe's OpenAPI 3 files, a
stand-in serves unvalidated and says so once in its log.

- :class:`CordialSwagger`: Cordial's Swagger 2.0 document (C-V2) as jsonschema checks, its known
  defects worked around (no OpenAPI 3 validator reads Swagger 2.0);
- :func:`adobe_api`: one of Adobe's OpenAPI 3 documents as an ``openapi_core.OpenAPI``;
- :class:`SpecGate`: the ASGI middleware that lets a stand-in refuse a request before its route runs.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

# The validators are imported with this module, in the thread that builds the stand-ins, never first
# inside a request: two server threads importing jsonschema at once met a half-initialised module
# ("cannot import name 'Draft3Validator' ... partially initialized module", seen in the deployment
# check, where the Cordial and Adobe stand-ins answer their first requests together).
import jsonschema
import yaml

try:
    from openapi_core import Config, OpenAPI
    from openapi_core.datatypes import RequestParameters
    from openapi_core.exceptions import OpenAPIError
    from werkzeug.datastructures import Headers, ImmutableMultiDict
except ImportError:  # optional: without it, Adobe's stand-in serves unvalidated (adobe_api says so)
    OpenAPI = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SPECS_ENV = "EXPORTS_VENDOR_SPECS"
REPO_ROOT = Path(__file__).resolve().parents[2]
CORDIAL_SPEC = "cordial/cordial-v2-openapi-original.json"
#: Adobe's documents by the service the sandbox serves from each
ADOBE_SPECS = {
    "export": "adobe-aep/segmentation.yaml",
    "catalog": "adobe-aep/catalog.yaml",
    "data_access": "adobe-aep/data-access.yaml",
}
#: The operations the provider uses (and the sandbox serves), per Adobe document.
ADOBE_PATHS = {
    "export": ("/export/jobs", "/export/jobs/{EXPORT_JOB_ID}"),
    "catalog": ("/dataSets", "/dataSets/{DATASET_ID}", "/batches/{BATCH_ID}"),
    "data_access": ("/batches/{batchId}/files", "/files/{dataSetFileId}"),
}
#: Adobe's gateway, as the documents' servers name it
PLATFORM = "https://platform.adobe.io"


def specs_dir() -> Path:
    """Where the vendors' documents are looked for (it need not exist)."""
    configured = os.environ.get(SPECS_ENV)
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "vendor-apis"


def spec_file(relative: str) -> Path | None:
    """One vendor document, or ``None`` when it is not there (see :func:`missing_reason`)."""
    path = specs_dir() / relative
    return path if path.is_file() else None


def missing_reason(relative: str) -> str:
    return f"vendor spec {relative} not found in {specs_dir()} (set {SPECS_ENV} to the vendor-apis directory)"


@functools.cache
def unvalidated(vendor: str, why: str) -> None:
    """Say once per vendor and reason that requests are served without the vendor's document."""
    log.warning("%s sandbox serves requests unvalidated: %s", vendor, why)


# -- Cordial: Swagger 2.0 ------------------------------------------------------------------------


class CordialSwagger:
    """Cordial's Swagger 2.0 document (C-V2) as jsonschema checks, with its known defects worked around."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        definitions = doc["definitions"]
        # Spec defect: four shared responses (RecordsNotFound, OrderValidationError, OrderNotFound,
        # SupplementRemove) point at definitions that do not exist. None is on the endpoints used
        # here, but a dangling $ref breaks whole-document resolution: stub each as "any object".
        for missing in ("RecordsNotFound", "OrderValidationError", "OrderNotFound", "SupplementRemove"):
            definitions.setdefault(missing, {"type": "object"})
        # Spec defect: SourceAE.required names `fields` and `accountId`, which are not properties
        # of SourceAE and not in Cordial's docs (C-ATE); a valid request could never satisfy them.
        source = definitions["SourceAE"]
        source["required"] = [r for r in source["required"] if r not in ("fields", "accountId")]
        self._templates = [
            (re.compile(re.sub(r"\{[^/]+\}", "[^/]+", t)), t) for t in doc["paths"]
        ]

    @classmethod
    def load(cls, path: Path) -> CordialSwagger:
        return cls(json.loads(path.read_text()))

    def validate(self, instance: Any, schema: Mapping[str, Any]) -> None:
        """Raise ``jsonschema.ValidationError`` unless ``instance`` satisfies ``schema`` (which may
        ``$ref`` the document's definitions). Formats are annotations, as in Draft 4 without a format
        checker: Cordial's own date check answers with its documented 406 (C-V2 SourceAE)."""
        jsonschema.Draft4Validator({**schema, "definitions": self.doc["definitions"]}).validate(instance)

    def response_schema(self, path: str, method: str, status: int) -> dict[str, Any]:
        """The schema Cordial's spec gives for one response, following ``#/responses/...`` refs."""
        response = self.doc["paths"][path][method]["responses"][str(status)]
        ref = response.get("$ref")
        if ref is not None:
            response = self.doc["responses"][ref.rsplit("/", 1)[1]]
        if "schema" not in response:
            raise AssertionError(f"spec has no schema for {method.upper()} {path} {status}")
        return dict(response["schema"])

    def validate_response(self, resp: Any, path: str, method: str) -> None:
        self.validate(resp.json(), self.response_schema(path, method, resp.status_code))

    def template(self, path: str) -> str | None:
        """The spec's path template that ``path`` (a request's path) matches."""
        return next((t for pattern, t in self._templates if pattern.fullmatch(path)), None)

    def request_problems(
        self, method: str, url: str, params: Mapping[str, Any] | None, body: Any, *, check_body: bool = True
    ) -> list[str]:
        """What is wrong with one request by the spec: its path, query parameters and JSON body
        (``check_body=False``: the body is not JSON, so its types cannot be judged).

        A query parameter the operation does not declare is reported: Vendor is silent on unknown
        parameters (README §2): chosen to refuse them, so a misspelt one fails in tests instead of
        being ignored."""
        path = urlsplit(url).path
        what = f"{method} {path}"
        template = self.template(path)
        if template is None:
            return [f"{what}: no such path in the spec"]
        operation = self.doc["paths"][template].get(method.lower())
        if operation is None:
            return [f"{what}: the spec has no {method} for {template}"]
        declared = {p["name"]: p for p in operation.get("parameters", [])}
        problems = []
        for name, value in (params or {}).items():
            param = declared.get(name)
            if param is None or param["in"] != "query":
                problems.append(f"{what}: query parameter {name!r} is not in the spec")
            elif not isinstance(value, str):
                problems.append(f"{what}: query parameter {name}={value!r} is not a string")
            elif "enum" in param and value not in param["enum"]:
                problems.append(f"{what}: {name}={value!r} is not one of {param['enum']}")
        body_param = next((p for p in declared.values() if p["in"] == "body"), None)
        if body_param is None and body is not None:
            problems.append(f"{what}: the spec takes no body")
        elif body_param is not None and check_body:
            try:
                self.validate(body, body_param["schema"])
            except jsonschema.ValidationError as exc:
                problems.append(f"{what}: {laravel_message(exc)}")
        return problems


def laravel_message(exc: Any) -> str:
    """A schema error in the wording of Cordial's documented messages, which are Laravel's
    (``The destination.aws bucket field is required.``, ``The selected export type is invalid.``:
    C-V2); Vendor is silent on the others' wording: chosen Laravel's too."""
    path = [str(p) for p in exc.absolute_path]

    def attribute(parts: list[str]) -> str:
        # Laravel's displayable attribute: snake case, underscores as spaces.
        return " ".join(re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", ".".join(parts)).lower().split("_"))

    if exc.validator == "required":
        missing = re.search(r"'(.+?)' is a required property", exc.message)
        if missing:
            return f"The {attribute([*path, missing[1]])} field is required."
    if path and exc.validator == "enum":
        return f"The selected {attribute(path)} is invalid."
    if path and exc.validator == "type":
        wanted = {
            "string": "must be a string",
            "integer": "must be an integer",
            "number": "must be a number",
            "array": "must be an array",
            "object": "must be an array",  # PHP's name for a JSON object
            "boolean": "field must be true or false",
        }.get(str(exc.validator_value), f"must be of type {exc.validator_value}")
        return f"The {attribute(path)} {wanted}."
    return f"The request body is invalid: {exc.message}."


@functools.cache
def cordial_swagger() -> CordialSwagger | None:
    """Cordial's document, or ``None`` (logged once) when it is not there."""
    path = spec_file(CORDIAL_SPEC)
    if path is None:
        unvalidated("Cordial", missing_reason(CORDIAL_SPEC))
        return None
    return CordialSwagger.load(path)


# -- Adobe: OpenAPI 3 -----------------------------------------------------------------------------


def _strip_examples(node: Any, parent: str | None = None) -> Any:
    """Drop ``example``/``examples`` keys (but not properties that happen to be called so).

    Keys become strings too: YAML reads unquoted response codes (``200:``) as integers.
    """
    if isinstance(node, dict):
        return {
            str(k): _strip_examples(v, str(k))
            for k, v in node.items()
            if parent == "properties" or k not in ("example", "examples")
        }
    if isinstance(node, list):
        return [_strip_examples(v, parent) for v in node]
    return node


def load_adobe_api(service: str, path: Path) -> Any:
    """One of Adobe's documents as an ``openapi_core.OpenAPI``, its defects worked around."""
    raw = yaml.safe_load(path.read_text())
    # Workaround for a defect of Adobe's files: segmentation.yaml has literal `$ref` URLs
    # (https://ns.adobe.com/xdm/...) inside `example`s, which a resolver tries to fetch (no
    # network here). Examples are documentation only, so they are stripped before building.
    spec = _strip_examples(raw)
    # segmentation.yaml and catalog.yaml give scheme-relative servers
    # ("//{environment}.adobe.io/data/core/ups"), which openapi-core cannot match against a full
    # URL; the gateway is documented as https://platform.adobe.io, so the scheme is added.
    for server in spec["servers"]:
        if server["url"].startswith("//"):
            server["url"] = "https:" + server["url"]
    # Only the operations the provider uses are kept (faster path finding, clearer failures).
    spec["paths"] = {p: spec["paths"][p] for p in ADOBE_PATHS[service]}
    if service == "export":
        # Spec defect: ExportJobResponse.destination.batches is typed as one object, but the
        # Segmentation guide shows (and the sandbox returns) an array of them with
        # segmentPerBatch=true. Validate against the documented array.
        dest = spec["components"]["schemas"]["ExportJobResponse"]["properties"]["destination"]
        dest["properties"]["batches"] = {"type": "array", "items": copy.deepcopy(dest["properties"]["batches"])}
    # Adobe's files do not pass the strict OpenAPI 3.0 meta-validation (catalog.yaml lists
    # x-api-key twice on GET /tags/{tagNamespace} and has `description: null` in
    # components.schemas.serviceResources), so the document check is switched off; requests and
    # responses are still validated against the schemas.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@functools.cache
def adobe_api(service: str) -> Any | None:
    """Adobe's document for ``service`` (a key of :data:`ADOBE_SPECS`) as an ``openapi_core.OpenAPI``,
    or ``None`` (logged once) when the file or openapi-core is missing."""
    relative = ADOBE_SPECS[service]
    path = spec_file(relative)
    if path is None:
        unvalidated("Adobe Experience Platform", missing_reason(relative))
        return None
    if OpenAPI is None:
        unvalidated("Adobe Experience Platform", "openapi-core is not installed")
        return None
    return load_adobe_api(service, path)


class OpenAPIRequest:
    """The openapi-core request protocol for one request, as if it had been sent to ``host_url``."""

    def __init__(
        self,
        host_url: str,
        path: str,
        method: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        self.host_url = host_url
        self.path = path
        self.method = method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, values in query.items() for v in values]),
            header=Headers(list(headers.items())),
        )
        self.content_type = headers.get("content-type", "")
        self.body = body or None


def openapi_problem(api: Any, request: OpenAPIRequest) -> str | None:
    """What Adobe's document refuses in ``request`` (one sentence), or ``None``."""

    try:
        api.validate_request(request)
    except OpenAPIError as exc:
        return _describe(exc)
    return None


def _describe(exc: BaseException) -> str:
    """The validator's error as one line: its kind, then the first schema error behind it (where
    and what), not the whole value it was judging."""
    text = str(exc)
    cause = exc.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        first = schema_errors[0]
        where = ".".join(str(p) for p in getattr(first, "absolute_path", ()))
        head = text.split(": Value ", 1)[0]
        text = f"{head}: {where + ': ' if where else ''}{getattr(first, 'message', first)}"
    elif cause is not None and str(cause) not in text:
        text += f": {cause}"
    return text


# -- the gate -------------------------------------------------------------------------------------

Judge = Callable[["Request"], Awaitable["Response | None"]]


class SpecGate:
    """ASGI middleware: ``judge`` sees each request (its body readable) before the app does; the
    answer it returns is sent instead of the route's, ``None`` lets the request through unchanged
    (its body replayed). The sandbox's own ``/_sandbox/`` routes are not judged."""

    def __init__(self, app: ASGIApp, judge: Judge) -> None:
        self.app = app
        self.judge = judge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")

        def replay() -> Receive:
            sent = False

            async def again() -> Message:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return again

        refusal = await self.judge(Request(scope, replay()))
        if refusal is not None:
            await refusal(scope, replay(), send)
            return
        await self.app(scope, replay(), send)
