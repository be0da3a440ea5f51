"""The /graphql endpoint: GraphQL over HTTP with API-key auth, negotiation and JSON errors."""

import logging
import uuid
from datetime import timedelta
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import relay
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http import process_result as default_process_result
from strawberry.schema import BaseSchema
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UNSET, UnsetType

from app.accounts import service as accounts
from app.accounts.principals import KeyUseClaims, PrincipalCache
from app.accounts.rate_limits import (
    NoRateLimit,
    RateLimiter,
    ThrottleStatus,
    rate_limit_headers,
    retry_after_header,
)
from app.accounts.service import Principal
from app.background import Background
from app.config import Settings
from app.db import Database
from app.errors import ErrorCode, Forbidden
from app.graphql.cache_hits import CacheHits, CacheLookup
from app.graphql.context import Context
from app.graphql.dataloaders import create_dataloaders
from app.graphql.ide import GraphiQLPage
from app.graphql.persisted import (
    MemoryDocumentStore,
    PersistedOperations,
    PersistedQueryError,
)
from app.graphql.reads import RequestReads
from app.graphql.response_cache import ResponseCache
from app.graphql.websocket import LegacyWSHandler, OpenSockets, TransportWSHandler

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer
APPLICATION_JSON = "application/json"


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error body; every refusal carries a code (BAD_REQUEST unless said otherwise)."""
    error: dict[str, Any] = {
        "message": message,
        "extensions": {"code": code or ErrorCode.BAD_REQUEST.value},
    }
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


def _first_header_values(request: Request) -> dict[str, str]:
    """Each header's first value by its (lower-case) name, as `request.headers.get` gives it,
    read in one pass: each `get` of Starlette's Headers scans the whole list."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(request.scope["headers"])
    }


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

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        db: Database,
        settings: Settings,
        background: Background | None = None,
        rate_limiter: RateLimiter | None = None,
        persisted_operations: PersistedOperations | None = None,
        ide: GraphiQLPage | None = None,
        response_cache: ResponseCache | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            max_subscriptions_per_connection=20,
            connection_init_wait_timeout=timedelta(seconds=10),
            keep_alive=settings.ws_ping_interval_seconds > 0,
            keep_alive_interval=settings.ws_ping_interval_seconds,
        )
        self.db = db
        self.settings = settings
        self.open_sockets = OpenSockets(db, settings.ws_access_check_seconds)
        # Revocation bites over HTTP within the seconds it takes on open sockets.
        self.principals = PrincipalCache(settings.ws_access_check_seconds)
        self.key_uses = KeyUseClaims(accounts.LAST_USED_RESOLUTION.total_seconds())
        self.background = background
        self.rate_limiter = rate_limiter or NoRateLimit()
        self.persisted_operations = persisted_operations or PersistedOperations(
            MemoryDocumentStore()
        )
        self.ide = ide or GraphiQLPage(db, settings)
        self.response_cache = response_cache
        self.cache_hits = (
            CacheHits(response_cache, self.persisted_operations, self.rate_limiter)
            if response_cache
            else None
        )

    def encode_json(self, data: object) -> str:
        # A str, not bytes: Strawberry sends a str as a WebSocket *text* frame, and the
        # graphql-ws, Apollo, urql and GraphiQL clients reject binary frames.
        return orjson.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> Response:
        return await self.ide.render(request)

    def decode_json(self, data: str | bytes) -> object:
        """Strict JSON: orjson refuses invalid UTF-8, NaN and Infinity, lone surrogates and
        nesting beyond 1,024 levels, each of which Python's json module lets through."""
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        """A request body: one JSON object, else HTTP 400 (GraphQL over HTTP)."""
        try:
            parsed = self.decode_json(data)
        except orjson.JSONDecodeError as error:
            raise HTTPException(400, f"Not valid JSON: {error}.") from None
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
        method, headers = request.method, _first_header_values(request)
        if method not in ("GET", "POST"):
            return error_response(
                405, "GraphQL is served over GET and POST.", headers={"Allow": "GET, POST"}
            )
        accept = headers.get("accept", "")
        wants_page = "text/html" in accept
        if method == "GET" and wants_page and self.should_render_graphql_ide(request):
            return await self.render_graphql_ide(request)
        if method == "POST":
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != APPLICATION_JSON:
                return error_response(415, "Send the request as Content-Type: application/json.")
        media_type = _preferred_media_type(accept)
        if media_type is None:
            return error_response(
                406, f"This endpoint answers {APPLICATION_JSON} or {GRAPHQL_RESPONSE_JSON}."
            )

        try:
            within_limit = method != "POST" or await self._body_within_limit(
                request, headers.get("content-length", "")
            )
        except ClientDisconnect:
            # The client went away (or its body deadline passed) mid-body: nobody to answer.
            log.info("client disconnected before sending its whole body")
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        if not within_limit:
            return error_response(
                413, f"The request body is over {self.settings.max_body_bytes} bytes."
            )
        try:
            principal = await self.principal_for(
                api_key_from_headers(headers), headers.get("x-subaccount-id")
            )
        except accounts.NotAuthenticated as error:
            return error_response(
                401,
                str(error),
                ErrorCode.UNAUTHENTICATED.value,
                headers={"WWW-Authenticate": "Bearer"},
            )
        except Forbidden as error:
            return error_response(403, error.message, ErrorCode.FORBIDDEN.value)
        reads = RequestReads(self.db, shareable=True)
        try:
            lookup = CacheLookup()
            if self.cache_hits is not None and not self.settings.debug:
                lookup = await self.cache_hits.look_up(request, principal, reads)
                if lookup.answer is not None:
                    throttle, bucket = lookup.throttle, lookup.bucket
                    return await self._finish(request, media_type, throttle, bucket, lookup.answer)
            context = self.context_for(request, principal, reads, lookup.key)
            return await self._run(request, media_type, context)
        finally:
            await reads.close()  # given back already, unless a path left it open

    async def _run(self, request: Request, media_type: str, context: Context) -> Response:
        """The normal path: Strawberry's whole pipeline."""
        try:
            response: Response = await self.run(request, context=context)
        except HTTPException as error:
            status = error.status_code
            if request.method == "GET" and "not allowed when using GET" in error.reason:
                status = 405  # a mutation over GET
            headers = {"Allow": "POST"} if status == 405 else None
            failed = error_response(status, error.reason, headers=headers)
            return await self._apply_throttle(context.throttle, context.rate_limit_key, failed)
        except PersistedQueryError as error:
            failed = error_response(
                error.status, error.message, error.code.value, {"Cache-Control": "no-store"}
            )
            return await self._apply_throttle(context.throttle, context.rate_limit_key, failed)
        throttle, bucket = context.throttle, context.rate_limit_key
        return await self._finish(request, media_type, throttle, bucket, response)

    async def _finish(
        self,
        request: Request,
        media_type: str,
        throttle: ThrottleStatus | None,
        rate_limit_key: str | None,
        response: Response,
    ) -> Response:
        """The negotiated content type, the RateLimit headers and, for a GET, caching rules:
        the same for an executed answer and a cache hit."""
        if media_type == GRAPHQL_RESPONSE_JSON and response.media_type == APPLICATION_JSON:
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
            # The spec: a response without `data` (the request failed before execution) is 4xx.
            if not getattr(request.state, "graphql_executed", True):
                response.status_code = 400
        response = await self._apply_throttle(throttle, rate_limit_key, response)
        if request.method == "GET" and response.status_code == 200:
            # A persisted query's GET may pass a CDN or browser cache: the answer is one
            # tenant's, for the key that asked, so only a private cache may keep it.
            response.headers["Cache-Control"] = "private"
            response.headers["Vary"] = "Authorization, X-API-Key, X-Subaccount-Id"
        return response

    # Persisted operations: Strawberry parses the body (or the GET parameters), then the
    # persisted-query extension supplies or checks the query text (app/graphql/persisted.py).
    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, list):
            return data  # batches are refused: the schema allows none
        return await self.persisted_operations.resolve(data)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET of a persisted query carries no `query` but is no request for the IDE.
        return super().should_render_graphql_ide(request) and not request.query_params.get(
            "extensions"
        )

    async def _apply_throttle(
        self, throttle: ThrottleStatus | None, rate_limit_key: str | None, response: Response
    ) -> Response:
        """RateLimit headers from the key's bucket after the request (`throttle`); 429 when the
        cost extension refused the operation. A request that never reached execution
        (malformed, invalid) has no `throttle` yet and costs 1 point."""
        if throttle is None and rate_limit_key is not None:
            throttle = await self.rate_limiter.take(rate_limit_key, 1)
            if throttle is not None and throttle.refused:
                # Refused for the bucket, whatever else was wrong: the answer says so.
                response = error_response(
                    429,
                    "Too many requests for this API key; retry after "
                    f"{retry_after_header(throttle.retry_after)} s.",
                    ErrorCode.RATE_LIMITED.value,
                    {"Cache-Control": "no-store"},
                )
        if throttle is None:
            return response
        response.headers.update(rate_limit_headers(throttle))
        if throttle.refused:
            response.status_code = 429
            response.headers["Retry-After"] = retry_after_header(throttle.retry_after)
        return response

    async def _body_within_limit(self, request: Request, declared: str) -> bool:
        """Read the body up to the limit (Starlette caches it for Strawberry); refuse early on
        a declared Content-Length (`declared`) that is already too large. The ASGI messages
        are read here as `Request.stream()` reads them, without its async generator."""
        limit = self.settings.max_body_bytes
        if declared.isdigit() and int(declared) > limit:
            return False
        chunks, size = [], 0
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return False
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        request._stream_consumed = True
        request._body = b"".join(chunks)  # Starlette's own cache of the read body
        return True

    def context_for(
        self,
        request: Request,
        principal: Principal,
        reads: RequestReads,
        response_cache_key: str | None = None,
    ) -> Context:
        return Context(
            db=self.db,
            settings=self.settings,
            principal=principal,
            reads=reads,
            loaders=create_dataloaders(reads, principal),
            request=request,
            background=self.background,
            rate_limiter=self.rate_limiter,
            rate_limit_key=str(principal.api_key_id),
            persisted_operations=self.persisted_operations,
            response_cache=self.response_cache,
            response_cache_key=response_cache_key,
        )

    async def principal_for(self, plain_key: str | None, subaccount: str | None) -> Principal:
        """Who a key (and subaccount header or parameter) acts as; records the key's use."""
        subaccount_id = subaccount_id_from_header(subaccount)
        known = self.principals.get(
            plain_key, subaccount_id, lambda: self._authenticate(plain_key, subaccount_id)
        )
        if known is not None:
            return known
        principal = await self._authenticate(plain_key, subaccount_id)
        self.principals.put(plain_key or "", subaccount_id, principal)
        return principal

    async def _authenticate(
        self, plain_key: str | None, subaccount_id: uuid.UUID | None
    ) -> Principal:
        async with self.db.session() as session:
            principal, stale = await accounts.authenticate(session, plain_key, subaccount_id)
        if stale and self.key_uses.claim(principal.api_key_id):
            try:
                async with self.db.transaction() as session:
                    await accounts.record_key_use(session, principal.api_key_id)
            except BaseException:
                self.key_uses.release(principal.api_key_id)
                raise
        return principal

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Parse, validation and variable-coercion failures (and limits refused before execution)
        # never ran: under application/graphql-response+json such a response is 4xx and has no
        # `data` entry. An execution whose field error bubbled up to `data: null` did run (its
        # errors have a path), and stays 200.
        executed = not isinstance(result, PreExecutionError) and (
            result.data is not None or any(error.path for error in result.errors or ())
        )
        request.state.graphql_executed = executed
        response = default_process_result(result)
        accept = request.headers.get("accept", "")
        if not executed and _preferred_media_type(accept) == GRAPHQL_RESPONSE_JSON:
            response.pop("data", None)
        return response

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        # HTTP requests get their context from `context_for`; this one serves a WebSocket, and
        # `on_ws_connect` fills in its principal from the connection_init payload or headers.
        reads = RequestReads(self.db)
        return Context(
            db=self.db,
            settings=self.settings,
            principal=None,
            reads=reads,
            loaders=create_dataloaders(reads, None),
            request=request,
            response=response,
            background=self.background,
            persisted_operations=self.persisted_operations,
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
        subaccount = params.get("subaccountId")
        if subaccount is None or subaccount == "":  # absent: the handshake's header may say
            subaccount = headers.get("x-subaccount-id")
        elif not isinstance(subaccount, str):  # not to be read as "no subaccount": the parent
            raise ConnectionRejectionError(
                {
                    "message": "subaccountId must be a string: the subaccount's id.",
                    "extensions": {"code": ErrorCode.FORBIDDEN.value},
                }
            )
        try:
            principal = await self.principal_for(
                plain_key if isinstance(plain_key, str) else None,
                subaccount or None,
            )
        except accounts.NotAuthenticated as error:
            raise ConnectionRejectionError(
                {"message": str(error), "extensions": {"code": ErrorCode.UNAUTHENTICATED.value}}
            ) from error
        except Forbidden as error:
            raise ConnectionRejectionError(
                {"message": error.message, "extensions": {"code": ErrorCode.FORBIDDEN.value}}
            ) from error
        if refusal := accounts.stream_refusal(principal):
            raise ConnectionRejectionError(
                {"message": refusal.value, "extensions": {"code": ErrorCode.FORBIDDEN.value}}
            )
        # connection_init costs 1 point; each operation on the socket is then charged like one
        # over HTTP (a subscription once, when it starts).
        throttle = await self.rate_limiter.take(str(principal.api_key_id), 1)
        if throttle is not None and throttle.refused:
            raise ConnectionRejectionError(
                {
                    "message": "Too many requests for this API key; retry after "
                    f"{retry_after_header(throttle.retry_after)} s.",
                    "extensions": {"code": ErrorCode.RATE_LIMITED.value},
                }
            )
        context.principal = principal
        context.loaders = create_dataloaders(context.reads, principal)
        context.rate_limiter = self.rate_limiter
        context.rate_limit_key = str(principal.api_key_id)
        return UNSET
