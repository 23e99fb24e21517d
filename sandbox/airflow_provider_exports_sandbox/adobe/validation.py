"""What the Adobe sandbox accepts: every Platform request that passes the gateway's header checks is
judged by Adobe's OpenAPI document of its service (segmentation.yaml, catalog.yaml, data-access.yaml
through :func:`~airflow_provider_exports_sandbox.specs.adobe_api`: path, query parameters, headers,
JSON body) before its route runs; the routes check only what the documents say in words."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_exports_sandbox.adobe.export_jobs import ups_error
from airflow_provider_exports_sandbox.adobe.gateway import AdobeGateway, problem
from airflow_provider_exports_sandbox.adobe.records import CATALOG_BASE, DATA_ACCESS_BASE, EXPORT_BASE
from airflow_provider_exports_sandbox.specs import PLATFORM, Judge, OpenAPIRequest, adobe_api, openapi_problem


def _bad_request(message: str) -> Response:
    return problem(400, "BadRequestError", message)


#: Each service's base path, its document and how it refuses a request: Adobe documents the 400s
#: but not their bodies, so each service answers in the shape it uses for its other errors (the
#: SANDBOX CHOICEs of :func:`.export_jobs.ups_error` and :func:`.gateway.problem`).
SERVICES: tuple[tuple[str, str, Callable[[str], Response]], ...] = (
    (EXPORT_BASE, "export", lambda message: ups_error(400, message)),
    (CATALOG_BASE, "catalog", _bad_request),
    (DATA_ACCESS_BASE, "data_access", _bad_request),
)


def spec_judge(aep: AdobeGateway) -> Judge:
    """The OpenAPI check of every Platform request. A request the gateway refuses (A-TRB's header
    errors) passes through to that answer; IMS (no document) is not judged."""

    async def judge(request: Request) -> Response | None:
        path = request.url.path
        found = next(((b, s, r) for b, s, r in SERVICES if path.startswith(b + "/")), None)
        if found is None:
            return None
        _, service, refuse = found
        if aep.check_gateway(request, has_body=request.method == "POST") is not None:
            return None
        api = adobe_api(service)
        if api is None:
            return None
        if path == EXPORT_BASE + "/export/jobs/":
            # The guides' link.next is "/export/jobs/?limit=..." (A-SEJ, A-PEJ): the documented
            # list, with the slash the spec's path lacks.
            path = path.rstrip("/")
        oa_request = OpenAPIRequest(
            PLATFORM,
            path,
            request.method,
            parse_qs(request.url.query, keep_blank_values=True),
            request.headers,
            await request.body(),
        )
        refused = openapi_problem(api, oa_request)
        return None if refused is None else refuse(refused)

    return judge
