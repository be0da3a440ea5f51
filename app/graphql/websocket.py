"""GraphQL over WebSocket: both protocols' handlers, server pings, and the loop that closes the
sockets of revoked keys and suspended accounts."""

import asyncio
import contextvars
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any, Protocol, cast

from cachetools import TTLCache
from graphql import GraphQLError, OperationDefinitionNode
from starlette.websockets import WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected as SendAfterClose
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    PongMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage,
    ErrorMessage,
    OperationMessage,
    StartMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from app.accounts import service as accounts
from app.accounts.service import StreamRefusal
from app.config import Settings
from app.db import Database
from app.errors import DomainError, ErrorCode
from app.events.feed import DirectSocket
from app.graphql.cache_hits import parse_document
from app.graphql.context import Context
from app.graphql.events import LIVE_FRAMES, LiveFrames, continue_detached
from app.graphql.extensions import MAX_DOCUMENT_CHARACTERS, classify
from app.graphql.persisted import not_trusted
from app.graphql.schema import MAX_TOKENS
from app.websocket_writes import (
    AUTHENTICATED,
    BURST_UNITS,
    SEND_TEXTS_NOW,
    UNITS_PER_SECOND,
    UNREAD_CLOSE_GRACE_SECONDS,
    FrameBudget,
)

log = logging.getLogger(__name__)

# Close codes, shared by both protocols (the numbers are graphql-transport-ws's own).
CLOSE_INVALID_MESSAGE = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_PONG_TIMEOUT = 4408
CLOSE_INIT_TIMEOUT = 4408  # as graphql-transport-ws closes an uninitialised socket
CLOSE_TOO_MANY_INITIALISATIONS = 4429

# graphql-ws sends UUIDs, subscriptions-transport-ws counters: an id is sent back in every
# frame of its operation and kept as long as it runs.
MAX_OPERATION_ID_CHARACTERS = 128
MAX_KEPT_BUDGETS = 10_000  # accounts whose sockets all closed, their frame budgets refilling

_OPTIONAL_OBJECT = (dict, type(None))
_OPTIONAL_STRING = (str, type(None))


def message_problem(message: object, operation_type: str) -> str | None:
    """Why a decoded frame is not a well-formed client message, or None. `operation_type` is
    the protocol's name for starting an operation (`subscribe`, or `start` on the legacy one).

    Strawberry indexes into messages as if they were dicts; checked here first, a frame like
    `[]`, `null` or `{"type": "subscribe", "payload": 1}` closes the socket with 4400 instead of
    raising TypeError in the handler."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "Invalid message: expected a JSON object with a string 'type'"
    kind = message["type"]
    if kind in (operation_type, "complete", "stop") and (
        not isinstance(message.get("id"), str) or not message["id"]
    ):
        return f"Invalid message: '{kind}' needs a non-empty string 'id'"
    if kind == operation_type:
        if len(message["id"]) > MAX_OPERATION_ID_CHARACTERS:
            return f"Invalid message: 'id' is over {MAX_OPERATION_ID_CHARACTERS} characters"
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return f"Invalid message: '{kind}' needs a payload with a string 'query'"
        if not isinstance(payload.get("variables"), _OPTIONAL_OBJECT):
            return "Invalid message: 'variables' must be an object"
        if not isinstance(payload.get("operationName"), _OPTIONAL_STRING):
            return "Invalid message: 'operationName' must be a string"
        if not isinstance(payload.get("extensions"), _OPTIONAL_OBJECT):
            return "Invalid message: 'extensions' must be an object"
    return None


def refusal_before_parsing(context: Context, query: str) -> GraphQLError | None:
    """What refuses an operation before its text is parsed, as over HTTP: an empty query
    (Strawberry would fail with MissingQuery, an internal error), and in trusted-documents mode
    text not in the manifest (validating it first would tell which fields exist)."""
    if len(query) > MAX_DOCUMENT_CHARACTERS:
        return GraphQLError(
            f"The document is over {MAX_DOCUMENT_CHARACTERS:,} characters: send large inputs "
            "as variables.",
            extensions={"code": ErrorCode.BAD_REQUEST.value},
        )
    if not query.strip():
        return GraphQLError(
            "The subscribe message's payload.query is empty: send the operation's text.",
            extensions={"code": ErrorCode.BAD_REQUEST.value},
        )
    trusted = getattr(context.persisted_operations, "trusted", None)
    if trusted is not None and not trusted.trusts(query):
        error = not_trusted()
        return GraphQLError(error.message, extensions={"code": error.code.value})
    return None


def operation_problem(payload: dict[str, Any]) -> GraphQLError | None:
    """What refuses an operation whose document parses (the schema's parse cache, which the
    execution then hits) but names no operation it holds, or holds none (only fragments) —
    over HTTP a BAD_REQUEST, here it was an INTERNAL_ERROR with a logged traceback — or None.
    Keeps of `payload["variables"]` only those the operation declares: the others are never
    read, and a subscription's message is kept as long as it runs (4 MB of unused variables
    each, 20 per socket)."""
    try:
        document = parse_document(payload["query"], max_tokens=MAX_TOKENS)
    except GraphQLError:
        return None  # the execution reports the syntax error
    operations = [
        node for node in document.definitions if isinstance(node, OperationDefinitionNode)
    ]
    name = payload.get("operationName")
    if name is None:
        chosen = operations if len(operations) == 1 else []
        problem = "Must provide operation name if query contains multiple operations."
    else:
        chosen = [node for node in operations if node.name and node.name.value == name]
        problem = f"Unknown operation named '{name}'."
    if not operations:
        problem = "Can't get GraphQL operation type"  # HTTP's words for it
    if not chosen:
        return GraphQLError(problem, extensions={"code": ErrorCode.BAD_REQUEST.value})
    variables = payload.get("variables")
    if variables:
        declared = {
            definition.variable.name.value for definition in chosen[0].variable_definitions or ()
        }
        if not declared.issuperset(variables):
            payload["variables"] = {k: v for k, v in variables.items() if k in declared}
    return None


class GuardedSocket(Protocol):
    """What OpenSockets needs of a handler: a way to close it with a code and reason."""

    async def close_socket(self, code: int, reason: str) -> None: ...


class OpenSockets:
    """The authenticated WebSockets of this process, by API key, and the one loop that ends
    those whose key was revoked or whose account was suspended.

    However many sockets are open, a check is one statement per `check_interval` over the
    distinct key ids (not one per socket). The loop runs only while sockets are open; with a
    `check_interval` of 0 there is none (the caller runs `close_refused`)."""

    def __init__(self, db: Database, check_interval: float) -> None:
        self.db = db
        self.check_interval = check_interval
        self._by_key: dict[uuid.UUID, set[GuardedSocket]] = {}
        self._watcher: asyncio.Task[None] | None = None
        # What the sockets of each account may send (app/websocket_writes.py), while any is open
        # and, kept for the time a budget takes to refill, after: an account that closed and
        # reopened a socket would otherwise start on a full budget each time (a reconnect
        # loop sustained 37 times the refill rate).
        self._frame_budgets: weakref.WeakValueDictionary[uuid.UUID, FrameBudget] = (
            weakref.WeakValueDictionary()
        )
        self._recent_budgets: TTLCache[uuid.UUID, FrameBudget] = TTLCache(
            MAX_KEPT_BUDGETS, BURST_UNITS / UNITS_PER_SECOND
        )

    def frame_budget(self, account_id: uuid.UUID) -> FrameBudget:
        budget = self._frame_budgets.get(account_id)
        if budget is None:
            budget = self._frame_budgets[account_id] = FrameBudget(BURST_UNITS, UNITS_PER_SECOND)
        self._recent_budgets[account_id] = budget
        return budget

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._by_key.values())

    def add(self, key_id: uuid.UUID, socket: GuardedSocket) -> None:
        self._by_key.setdefault(key_id, set()).add(socket)
        if self.check_interval > 0 and (self._watcher is None or self._watcher.done()):
            # A fresh context: the loop serves every socket, not the request that started it
            # (its log lines would carry that request's id).
            self._watcher = asyncio.create_task(
                self._watch(), name="websocket access checks", context=contextvars.Context()
            )

    def discard(self, key_id: uuid.UUID, socket: GuardedSocket) -> None:
        sockets = self._by_key.get(key_id)
        if sockets is None:
            return
        sockets.discard(socket)
        if not sockets:
            del self._by_key[key_id]

    async def refusal(self, key_id: uuid.UUID) -> StreamRefusal | None:
        """Whether one key may still stream (checked when a socket starts an operation)."""
        async with self.db.session() as session:
            return (await accounts.keys_losing_streams(session, [key_id])).get(key_id)

    async def close_refused(self) -> int:
        """One check over every open socket's key; closes those refused. Returns how many."""
        if not self._by_key:
            return 0
        async with self.db.session() as session:
            refused = await accounts.keys_losing_streams(session, list(self._by_key))
        closed = 0
        for key_id, refusal in refused.items():
            for socket in list(self._by_key.pop(key_id, ())):
                await socket.close_socket(CLOSE_FORBIDDEN, refusal.value)
                closed += 1
        if closed:
            log.info("closed %d WebSocket(s) of revoked keys or suspended accounts", closed)
        return closed

    async def _watch(self) -> None:
        while self._by_key:
            await asyncio.sleep(self.check_interval)
            try:
                await self.close_refused()
            except Exception:
                # A database blip must not end the checks; the next interval tries again.
                log.exception("WebSocket access check failed")


class SocketHost(Protocol):
    """The view attributes the handlers use (GraphQLEndpoint provides them)."""

    settings: Settings
    open_sockets: OpenSockets


async def _nothing_to_stop() -> None:
    pass


class _Guard:
    """What both protocols' handlers share: registration with OpenSockets once authenticated,
    the access check before each new operation, and a close that stops all sending first."""

    def __init__(
        self,
        host: SocketHost,
        context: Context,
        websocket: AsyncWebSocketAdapter,
        stop_operations: Callable[[], Awaitable[None]],
    ) -> None:
        self.host = host
        self.context = context
        self.websocket = websocket
        self.stop_operations = stop_operations
        self.key_id: uuid.UUID | None = None
        self.closed = False
        self.detached: dict[str, LiveFrames] = {}  # by operation id
        scope = context.request.scope if context.request is not None else {}
        extensions = scope.get("extensions") or {}
        # The server's synchronous frame writes (app/websocket_writes.py), when it has them.
        self.direct_socket: DirectSocket | None = extensions.get(SEND_TEXTS_NOW)
        # Raises the server's frame budget for the peer once it is acknowledged (see
        # app/websocket_writes.py), when the server has one.
        self._authenticated: Callable[[FrameBudget], None] | None = extensions.get(AUTHENTICATED)

    def live_frames(self, operation_id: str, message_type: str) -> None:
        """Let the operation running in this task have its events written directly, once it
        is detached (see `keep_detached`)."""
        if self.direct_socket is not None:
            LIVE_FRAMES.set(LiveFrames(operation_id, message_type, self.direct_socket))

    def keep_detached(self, operation_id: str, frames: LiveFrames) -> None:
        """A detached operation's frames, stopped when it ends (`stop_detached`) or the socket
        closes."""
        frames.detach()
        self.detached[operation_id] = frames

    def stop_detached(self, operation_id: str, frames: LiveFrames | None = None) -> None:
        """The operation is over (or `frames`, if given, are): nothing more is written for it.
        Called before anything awaits, so that not one frame goes out after the decision."""
        kept = self.detached.get(operation_id)
        if kept is not None and (frames is None or kept is frames):
            del self.detached[operation_id]
            kept.stop()

    @staticmethod
    def end_live_frames() -> None:
        """The operation of this task is over: its frames let go of it. The task's context holds
        them, and they hold the operation (which holds the task) and its executor: a cycle
        that would keep the subscription's objects until a full garbage collection."""
        if (frames := LIVE_FRAMES.get()) is not None:
            frames.release()
            LIVE_FRAMES.set(None)

    @staticmethod
    def detachable_frames() -> LiveFrames | None:
        """The frames of this task's subscription, once it can go on without its stack; taken
        from the task, whose end must then leave them be."""
        frames = LIVE_FRAMES.get()
        if frames is None or not frames.detachable:
            return None
        LIVE_FRAMES.set(None)
        return frames

    async def deliver_detached(self, frames: LiveFrames, operation_id: str) -> GraphQLError | None:
        """Run `continue_detached` (in the subscription's new task, until cancelled, or the
        socket goes); the error to end the operation with if it failed."""
        try:
            await continue_detached(frames, self.send_text)
        except (WebSocketDisconnected, SendAfterClose):
            log.info("websocket closed by the client during an operation")
        except DomainError as error:  # the feed ended it (EVENT_HISTORY_REWOUND)
            return classify(GraphQLError(error.message, original_error=error), debug=False)
        except Exception:
            log.exception("delivering events of operation %r failed", operation_id)
            return GraphQLError(
                "Delivering this subscription's events failed; subscribe again to resume "
                "with afterSequence.",
                extensions={"code": ErrorCode.INTERNAL_ERROR.value},
            )
        return None

    async def send_text(self, message: bytes) -> None:
        """Send an encoded message the way that waits for the socket (a detached subscription
        catching up); nothing once the socket is closing."""
        if self.closed:
            return
        try:
            await cast(ASGIWebSocketAdapter, self.websocket).ws.send_text(message.decode())
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error

    @staticmethod
    def note_sent(message: Mapping[str, Any], data_type: str) -> None:
        """A result frame about to go out the ordinary way, for the frames of its task."""
        if message.get("type") == data_type and (frames := LIVE_FRAMES.get()) is not None:
            frames.note_payload(message.get("payload") or {})

    def register(self, socket: GuardedSocket) -> None:
        if self.key_id is None and self.context.principal is not None:
            self.key_id = self.context.principal.api_key_id
            self.host.open_sockets.add(self.key_id, socket)
            if self._authenticated is not None:
                account = self.context.principal.account_id
                self._authenticated(self.host.open_sockets.frame_budget(account))
                self._authenticated = None

    def unregister(self, socket: GuardedSocket) -> None:
        if self.key_id is not None:
            self.host.open_sockets.discard(self.key_id, socket)

    def release(self) -> None:
        """The handler is done: drop the guard's reference back to it. Handler, guard and bound
        method otherwise form a cycle that holds a closed socket's objects (its context, its
        WebSocket, the server's protocol) until a full garbage collection, which 5,000 closed
        sockets make a pause of a second or more; without it they are freed at once."""
        self.stop_operations = _nothing_to_stop

    async def refusal(self) -> StreamRefusal | None:
        if self.key_id is None:
            return None
        return await self.host.open_sockets.refusal(self.key_id)

    async def receive_messages(
        self, operation_type: str, handle_message: Callable[[Any], Awaitable[None]]
    ) -> None:
        """Hand each well-formed message to `handle_message` until the socket closes; close with
        4400 on any other frame (Strawberry ignores invalid JSON on the legacy protocol, closes
        binary frames there with 1002, and raises TypeError on a non-object)."""
        try:
            async for message in self.websocket.iter_json():
                if problem := message_problem(message, operation_type):
                    await self.close(CLOSE_INVALID_MESSAGE, problem)
                    return
                await handle_message(message)
        except NonTextMessageReceived:
            await self.close(
                CLOSE_INVALID_MESSAGE, "Invalid message: binary frames are not accepted"
            )
        except (NonJsonMessageReceived, RecursionError):
            await self.close(CLOSE_INVALID_MESSAGE, "Invalid message: not valid JSON")

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        # Stop the operations first, so that no event is sent after the decision to close:
        # the writer's first, all at once (stopping the others may await).
        for operation_id in list(self.detached):
            self.stop_detached(operation_id)
        await self.stop_operations()
        # The peer may be gone already; closing a closed socket is not an error here. One that
        # reads nothing would keep the close frame (and this task) waiting: it is dropped.
        with suppress(RuntimeError, WebSocketDisconnect, WebSocketDisconnected):
            try:
                await asyncio.wait_for(
                    self.websocket.close(code=code, reason=reason), UNREAD_CLOSE_GRACE_SECONDS
                )
            except TimeoutError:
                if self.direct_socket is not None:
                    self.direct_socket.abort()


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws (the `graphql-ws` library's protocol), plus server pings: after
    connection_ack, a `ping` every `ws_ping_interval_seconds`; no `pong` within
    `ws_pong_timeout_seconds` closes with 4408."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = _Guard(
            cast(SocketHost, self.view), self.context, self.websocket, self._stop_operations
        )
        self._pong = asyncio.Event()
        self._pinger: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        self.on_request_accepted()
        try:
            await self.guard.receive_messages("subscribe", self.handle_message)
        except WebSocketDisconnected:
            pass
        finally:
            await self.shutdown()
            self.guard.release()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.guard.key_id is None:
            self.guard.register(self)
            settings = self.guard.host.settings
            if settings.ws_ping_interval_seconds > 0:
                self._pinger = asyncio.create_task(self._ping_until_silent(settings))
                self._pinger.add_done_callback(self._task_done)

    async def _ping_until_silent(self, settings: Settings) -> None:
        while not self.guard.closed:
            await asyncio.sleep(settings.ws_ping_interval_seconds)
            self._pong.clear()
            try:
                # One deadline for the ping and its pong: a peer that reads nothing never lets
                # the ping out of a full buffer, and is as silent as one that does not answer.
                await asyncio.wait_for(self._ping(), settings.ws_pong_timeout_seconds)
            except (WebSocketDisconnected, RuntimeError):
                return  # the socket is closing or gone: the receive loop ends it
            except TimeoutError:
                await self.close_socket(CLOSE_PONG_TIMEOUT, "Pong timeout")
                return

    async def _ping(self) -> None:
        await self.send_message({"type": "ping"})
        await self._pong.wait()

    async def handle_pong(self, message: PongMessage) -> None:
        self._pong.set()

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and (refusal := await self.guard.refusal()):
            await self.close_socket(CLOSE_FORBIDDEN, refusal.value)
            return
        if self.connection_acknowledged and (
            error := refusal_before_parsing(self.context, message["payload"]["query"])
            or operation_problem(cast(dict[str, Any], message["payload"]))
        ):
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Runs in the operation's own task: its subscription's frames are its own.
        guard = self.guard
        guard.live_frames(operation.id, "next")
        try:
            await super().run_operation(operation)
        finally:
            guard.end_live_frames()

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: Any
    ) -> None:
        # Strawberry's loop, which this replaces, plus the detach after the first result.
        is_first_result = True
        async for result in result_source:
            if is_first_result and isinstance(result, PreExecutionError):
                await self._handle_pre_execution_error(operation, result)
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            await operation.send_next(result)
            is_first_result = False
            if (frames := self.guard.detachable_frames()) is not None:
                self._detach(operation, frames)
                # Strawberry's run_operation closes the stream and ends without `complete`.
                raise _OperationStreamClosed

    def _detach(self, operation: Operation[Context, None], frames: LiveFrames) -> None:
        """The operation goes on in a new task, `operation.task`, the one `complete` cancels."""
        self.guard.keep_detached(operation.id, frames)
        operation.task = asyncio.create_task(self._run_detached(operation, frames))
        operation.task.add_done_callback(self._task_done)

    def forget_id(self, id: str) -> None:
        # The operation sends its last message (`complete`, `error`) after this.
        self.guard.stop_detached(id)
        super().forget_id(id)

    async def cleanup_operation(self, operation_id: str) -> None:
        self.guard.stop_detached(operation_id)
        await super().cleanup_operation(operation_id)

    async def _run_detached(self, operation: Operation[Context, None], frames: LiveFrames) -> None:
        try:
            if error := await self.guard.deliver_detached(frames, operation.id):
                with suppress(Exception):
                    await operation.send_operation_message(
                        {"id": operation.id, "type": "error", "payload": [error.formatted]}
                    )
        finally:
            self.guard.stop_detached(operation.id, frames)

    async def handle_task_exception(self, error: Exception) -> None:
        # A client that goes away mid-send is not an error of ours.
        # Strawberry's exception for the first send that finds the peer gone, Starlette's
        # (SendAfterClose) for the sends of the socket's other operations after it.
        if isinstance(error, (WebSocketDisconnected, SendAfterClose)):
            log.info("websocket closed by the client during an operation")
            return
        await super().handle_task_exception(error)

    async def handle_invalid_message(self, error_message: str) -> None:
        await self.close_socket(CLOSE_INVALID_MESSAGE, error_message)

    async def send_message(self, message: Message) -> None:
        if not self.guard.closed:
            self.guard.note_sent(message, "next")
            await super().send_message(message)

    async def close_socket(self, code: int, reason: str) -> None:
        await self.guard.close(code, reason)

    async def _stop_operations(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)

    async def shutdown(self) -> None:
        self.guard.unregister(self)
        if self._pinger is not None:
            self._pinger.cancel()
            with suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol (Apollo's `subscriptions-transport-ws`). It has no pong, so
    the server sends its `ka` keep-alive at the ping interval; dead peers are found by
    uvicorn's WebSocket-level pings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = _Guard(cast(SocketHost, self.view), self.context, self.websocket, self.cleanup)

    async def handle(self) -> None:
        # Strawberry arms no connection_init deadline on this protocol; graphql-transport-ws
        # closes with 4408 after it, and so does this handler: no socket stays unauthenticated.
        deadline = asyncio.create_task(self._close_unless_initialised())
        try:
            await self.guard.receive_messages("start", self.handle_message)
        except WebSocketDisconnected:
            pass
        finally:
            deadline.cancel()
            with suppress(asyncio.CancelledError):
                await deadline
            self.guard.unregister(self)
            if self.keep_alive_task:
                self.keep_alive_task.cancel()
                with suppress(BaseException):
                    await self.keep_alive_task
            await self.cleanup()
            self.guard.release()

    async def _close_unless_initialised(self) -> None:
        view = cast(Any, self.view)
        await asyncio.sleep(view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            await self.close_socket(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout")

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        if self.connection_acknowledged:
            # Strawberry would authenticate again and swap the principal under running
            # operations; graphql-transport-ws refuses a second init with 4429, so do we.
            await self.close_socket(
                CLOSE_TOO_MANY_INITIALISATIONS, "Too many initialisation requests"
            )
            return
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.guard.register(self)

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged and (refusal := await self.guard.refusal()):
            await self.close_socket(CLOSE_FORBIDDEN, refusal.value)
            return
        if self.connection_acknowledged and (
            error := refusal_before_parsing(self.context, message["payload"]["query"])
            or operation_problem(cast(dict[str, Any], message["payload"]))
        ):
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": error.formatted}
            )
            return
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # Runs in the operation's own task: its subscription's frames are its own.
        guard, tasks, task = self.guard, self.tasks, asyncio.current_task()
        detached = False
        guard.live_frames(operation_id, "data")
        # Strawberry's own loop, with `schema.stream` where it calls `schema.subscribe`: this
        # protocol's clients (Apollo's old WebSocketLink) send queries and mutations as
        # `start` too, which `subscribe` refuses with an exception (an INTERNAL_ERROR here).
        # `stream` runs any operation, as graphql-transport-ws does: one `data`, `complete`.
        try:
            result_source = await self.schema.stream(
                query=query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=self.context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = result_source
            first = True
            async for result in result_source:
                if first and isinstance(result, PreExecutionError):
                    assert result.errors
                    await self.send_message(
                        ErrorMessage(
                            type="error", id=operation_id, payload=result.errors[0].formatted
                        )
                    )
                    return
                if not isinstance(result, ExecutionResult):
                    # Incremental delivery (@defer/@stream), which this protocol cannot carry.
                    error = GraphQLError("Incremental delivery is not supported on graphql-ws.")
                    await self.send_message(
                        ErrorMessage(type="error", id=operation_id, payload=error.formatted)
                    )
                    return
                await self.send_data_message(result, operation_id)
                first = False
                if (frames := guard.detachable_frames()) is not None:
                    self._detach(operation_id, frames)
                    detached = True
                    await result_source.aclose()  # Strawberry's stack, this task with it
                    return
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
        except (WebSocketDisconnected, SendAfterClose):
            pass  # the client went away mid-send: no one is left to tell
        except asyncio.CancelledError:
            with suppress(WebSocketDisconnected, SendAfterClose):
                await self.send_message(CompleteMessage(type="complete", id=operation_id))
        finally:
            self.subscriptions.pop(operation_id, None)
            if not detached and tasks.get(operation_id) is task:
                del tasks[operation_id]
            guard.end_live_frames()

    def _detach(self, operation_id: str, frames: LiveFrames) -> None:
        """The operation goes on in a new task, the one `stop` cancels."""
        self.guard.keep_detached(operation_id, frames)
        self.tasks[operation_id] = asyncio.create_task(self._run_detached(operation_id, frames))

    async def cleanup_operation(self, operation_id: str) -> None:
        detached = operation_id in self.guard.detached
        self.guard.stop_detached(operation_id)
        await super().cleanup_operation(operation_id)
        if detached:
            # Told here, not by its task: one cancelled before its first step runs nothing.
            with suppress(WebSocketDisconnected, SendAfterClose):
                await self.send_message(CompleteMessage(type="complete", id=operation_id))

    async def _run_detached(self, operation_id: str, frames: LiveFrames) -> None:
        task = asyncio.current_task()
        try:
            if error := await self.guard.deliver_detached(frames, operation_id):
                with suppress(WebSocketDisconnected, SendAfterClose):
                    await self.send_message(
                        ErrorMessage(type="error", id=operation_id, payload=error.formatted)
                    )
        finally:
            self.guard.stop_detached(operation_id, frames)
            if self.tasks.get(operation_id) is task:
                del self.tasks[operation_id]

    async def send_message(self, message: OperationMessage | Mapping[str, Any]) -> None:
        if not self.guard.closed:
            self.guard.note_sent(message, "data")
            await super().send_message(cast(OperationMessage, message))

    async def close_socket(self, code: int, reason: str) -> None:
        await self.guard.close(code, reason)
