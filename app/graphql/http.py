"""The /graphql endpoint: GraphQL over HTTP with API-key auth, negotiation and JSON errors."""

import uuid
from datetime import timedelta
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import relay
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.http import process_result as default_process_result
from strawberry.schema import BaseSchema
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from app.accounts import service as accounts
from app.accounts.rate_limits import (
    NoRateLimit,
    RateLimiter,
    retry_after_header,
)
from app.accounts.service import Principal
from app.background import Background
from app.config import Settings
from app.db import Database
from app.errors import ErrorCode, Forbidden
from app.graphql.context import Context
from app.graphql.dataloaders import create_dataloaders

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
    return Response(
        orjson.dumps({"errors": [error]}),
        status_code=status,
        media_type=APPLICATION_JSON,
        headers=headers,
    )


def api_key_from_headers(headers: Any) -> str | None:
    authorization: str = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key: str | None = headers.get("x-api-key")
    return key.strip() if key else None


def subaccount_id_from_header(value: str | None) -> uuid.UUID | None:
    """The subaccount a request is scoped to: its global id (as the API returns it) or its uuid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        global_id = relay.GlobalID.from_id(value)
        if global_id.type_name == "Subaccount":
            return uuid.UUID(global_id.node_id)
    except ValueError:
        pass
    try:
        return uuid.UUID(value)
    except ValueError as error:
        raise Forbidden("Unknown subaccount for this key.", "X-Subaccount-Id") from error


def _preferred_media_type(accept: str) -> str | None:
    """The response type for an Accept header, or None when we can offer nothing acceptable."""
    if not accept.strip():
        return APPLICATION_JSON
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for media_type in offered:
        if media_type in (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON):
            return media_type
        if media_type in ("*/*", "application/*"):
            return APPLICATION_JSON
    return None


class GraphQLEndpoint(GraphQL[Context, None]):
    """Strawberry's ASGI view, with what a payments-grade API adds in front of it."""

    def __init__(
        self,
        schema: BaseSchema,
        db: Database,
        settings: Settings,
        background: Background | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            max_subscriptions_per_connection=20,
            connection_init_wait_timeout=timedelta(seconds=10),
        )
        self.db = db
        self.settings = settings
        self.background = background
        self.rate_limiter = rate_limiter or NoRateLimit()

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        """Strict JSON: orjson refuses invalid UTF-8, NaN and Infinity, lone surrogates and
        nesting beyond 1,024 levels, each of which Python's json module lets through."""
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        """A request body: one JSON object, else HTTP 400 (GraphQL over HTTP)."""
        try:
            parsed = self.decode_json(data)
        except orjson.JSONDecodeError as error:
            raise HTTPException(400, f"The body is not valid JSON: {error}.") from None
        if isinstance(parsed, list):
            return parsed  # Strawberry answers that batching is off
        if not isinstance(parsed, dict):
            raise HTTPException(
                400, 'The body must be a JSON object such as {"query": "{ viewer { mode } }"}.'
            )
        return parsed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response = await self.handle_http(Request(scope, receive))
        await response(scope, receive, send)

    async def handle_http(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            return error_response(
                405, "GraphQL is served over GET and POST.", headers={"Allow": "GET, POST"}
            )
        wants_page = "text/html" in request.headers.get("accept", "")
        if request.method == "GET" and wants_page and not request.query_params.get("query"):
            return await self.render_graphql_ide(request)
        if request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != APPLICATION_JSON:
                return error_response(415, "Send the request as Content-Type: application/json.")
        media_type = _preferred_media_type(request.headers.get("accept", ""))
        if media_type is None:
            return error_response(
                406, f"This endpoint answers {APPLICATION_JSON} or {GRAPHQL_RESPONSE_JSON}."
            )

        if request.method == "POST" and not await self._body_within_limit(request):
            return error_response(
                413, f"The request body is over {self.settings.max_body_bytes} bytes."
            )
        try:
            context = await self.authenticate(request)
        except accounts.NotAuthenticated as error:
            return error_response(
                401,
                str(error),
                ErrorCode.UNAUTHENTICATED.value,
                headers={"WWW-Authenticate": "Bearer"},
            )
        except Forbidden as error:
            return error_response(403, error.message, ErrorCode.FORBIDDEN.value)
        assert context.principal is not None
        retry_after = await self.rate_limiter.take(str(context.principal.api_key_id))
        if retry_after > 0:
            return error_response(
                429,
                "Too many requests for this API key; retry after the Retry-After seconds.",
                ErrorCode.RATE_LIMITED.value,
                headers={"Retry-After": retry_after_header(retry_after)},
            )

        try:
            response: Response = await self.run(request, context=context)
        except HTTPException as error:
            status = error.status_code
            if request.method == "GET" and "not allowed when using GET" in error.reason:
                status = 405  # a mutation over GET
            headers = {"Allow": "POST"} if status == 405 else None
            code = ErrorCode.BAD_REQUEST.value if status == 400 else None
            return error_response(status, error.reason, code, headers=headers)

        if media_type == GRAPHQL_RESPONSE_JSON and response.media_type == APPLICATION_JSON:
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
            # The spec: a response without `data` (the request failed before execution) is 4xx.
            if not getattr(request.state, "graphql_executed", True):
                response.status_code = 400
        return response

    async def _body_within_limit(self, request: Request) -> bool:
        """Read the body up to the limit (Starlette caches it for Strawberry); refuse early on
        a declared Content-Length that is already too large."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return False
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return False
            chunks.append(chunk)
        request._body = b"".join(chunks)  # Starlette's own cache of the read body
        return True

    async def authenticate(self, request: Request) -> Context:
        principal = await self.principal_for(
            api_key_from_headers(request.headers), request.headers.get("x-subaccount-id")
        )
        return Context(
            db=self.db,
            settings=self.settings,
            principal=principal,
            loaders=create_dataloaders(self.db, principal),
            request=request,
            background=self.background,
        )

    async def principal_for(self, plain_key: str | None, subaccount: str | None) -> Principal:
        """Who a key (and subaccount header or parameter) acts as; records the key's use."""
        subaccount_id = subaccount_id_from_header(subaccount)
        async with self.db.session() as session:
            principal, stale = await accounts.authenticate(session, plain_key, subaccount_id)
        if stale:
            async with self.db.transaction() as session:
                await accounts.record_key_use(session, principal.api_key_id)
        return principal

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        request.state.graphql_executed = result.data is not None
        return default_process_result(result)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        # HTTP requests get their context from `authenticate`; this one serves a WebSocket, and
        # `on_ws_connect` fills in its principal from the connection_init payload or headers.
        return Context(
            db=self.db,
            settings=self.settings,
            principal=None,
            loaders=create_dataloaders(self.db, None),
            request=request,
            response=response,
            background=self.background,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a WebSocket at connection_init: `{"apiKey": "cg_…"}` (optionally
        `"subaccountId"`) in the payload, else the handshake's Authorization/X-API-Key headers."""
        params = context.connection_params or {}
        headers = context.request.headers if context.request is not None else {}
        plain_key = params.get("apiKey") or api_key_from_headers(
            {key.lower(): value for key, value in params.items() if isinstance(value, str)}
        )
        plain_key = plain_key or api_key_from_headers(headers)
        subaccount = params.get("subaccountId") or headers.get("x-subaccount-id")
        try:
            principal = await self.principal_for(
                plain_key if isinstance(plain_key, str) else None,
                subaccount if isinstance(subaccount, str) else None,
            )
        except accounts.NotAuthenticated as error:
            raise ConnectionRejectionError(
                {"message": str(error), "extensions": {"code": ErrorCode.UNAUTHENTICATED.value}}
            ) from error
        except Forbidden as error:
            raise ConnectionRejectionError(
                {"message": error.message, "extensions": {"code": ErrorCode.FORBIDDEN.value}}
            ) from error
        if await self.rate_limiter.take(str(principal.api_key_id)) > 0:
            raise ConnectionRejectionError(
                {
                    "message": "Too many requests for this API key.",
                    "extensions": {"code": ErrorCode.RATE_LIMITED.value},
                }
            )
        context.principal = principal
        context.loaders = create_dataloaders(self.db, principal)
        return UNSET
