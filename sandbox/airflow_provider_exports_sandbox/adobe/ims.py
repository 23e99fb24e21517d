"""Adobe IMS: ``POST /ims/token/v3``, OAuth Server-to-Server (client credentials and a scope)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox.adobe.gateway import AdobeGateway
from airflow_provider_exports_sandbox.adobe.records import AEP_SCOPES


class Ims:
    """Issues the bearer tokens the gateway checks."""

    def __init__(self, aep: AdobeGateway) -> None:
        self.aep = aep

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_route("/ims/token/v3", self.token, methods=["POST"])
        return router

    async def token(self, request: Request) -> Response:
        # A-IMS: parameters may come in the query or the (recommended) form body.
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", "replace")
            params.update(parse_qsl(body, keep_blank_values=True))

        # SANDBOX CHOICE: the IMS reference lists the four mandatory parameters but not its error
        # bodies; these follow OAuth 2.0 (RFC 6749 section 5.2): 400 for a malformed request,
        # 401 invalid_client for a client that fails authentication.
        def error(status: int, code: str, description: str) -> Response:
            return JSONResponse({"error": code, "error_description": description}, status_code=status)

        for name in ("grant_type", "client_id", "client_secret", "scope"):
            if not params.get(name):
                return error(400, "invalid_request", f"missing required parameter: {name}")
        if params["grant_type"] != "client_credentials":
            return error(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if params["client_id"] != self.aep.client_id or params["client_secret"] != self.aep.client_secret:
            return error(401, "invalid_client", "invalid client_id or client_secret")
        requested = [s.strip() for s in params["scope"].split(",") if s.strip()]
        unknown = [s for s in requested if s not in AEP_SCOPES]
        if not requested or unknown:
            return error(400, "invalid_scope", f"invalid scope: {','.join(unknown) or params['scope']}")
        ttl = float(self.aep.token_ttl_seconds)
        token = self.aep.tokens.issue(ttl)
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": int(ttl)})
