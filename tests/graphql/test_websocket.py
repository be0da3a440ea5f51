"""OpenSockets: one statement per check closes every socket of revoked keys and suspended
accounts, whatever the number of sockets. (The handlers are tested over real sockets in
tests/e2e/test_websocket.py.)"""

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.accounts import service as accounts
from app.accounts.models import AccountStatus
from app.db import Database
from app.graphql import websocket
from app.graphql.websocket import (
    CLOSE_FORBIDDEN,
    MAX_OPERATION_ID_CHARACTERS,
    OpenSockets,
    message_problem,
    operation_problem,
)
from tests.conftest import counting_statements, make_account, make_key


class RecordingSocket:
    """Stands in for a protocol handler: records how OpenSockets closed it."""

    def __init__(self) -> None:
        self.closed_with: tuple[int, str] | None = None

    async def close_socket(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_one_statement_closes_the_sockets_of_revoked_keys_and_suspended_accounts(
    db: Database,
) -> None:
    acme = await make_account(db, "acme", "Acme")
    globex = await make_account(db, "globex", "Globex")
    (revoked, _), (kept, _) = await make_key(db, acme), await make_key(db, acme)
    suspended, _ = await make_key(db, globex)
    open_sockets = OpenSockets(db, check_interval=0)
    keys = (revoked, kept, suspended)
    sockets = {key.id: [RecordingSocket() for _ in range(300)] for key in keys}
    for key_id, key_sockets in sockets.items():
        for socket in key_sockets:
            open_sockets.add(key_id, socket)
    _, admin_key = await make_key(db, acme, admin=True)
    async with db.transaction() as session:
        admin, _ = await accounts.authenticate(session, admin_key)
        await accounts.revoke_api_key(session, admin, revoked.id)
        await accounts.set_account_status(session, "globex", AccountStatus.SUSPENDED)

    with counting_statements(db) as statements:
        closed = await open_sockets.close_refused()

    assert len(statements) == 1
    assert closed == 600
    assert len(open_sockets) == 300
    revoked_reason = (CLOSE_FORBIDDEN, "The API key has been revoked.")
    suspended_reason = (CLOSE_FORBIDDEN, "The account is suspended.")
    assert {socket.closed_with for socket in sockets[revoked.id]} == {revoked_reason}
    assert {socket.closed_with for socket in sockets[suspended.id]} == {suspended_reason}
    assert {socket.closed_with for socket in sockets[kept.id]} == {None}


async def test_no_open_sockets_means_no_statement(db: Database) -> None:
    with counting_statements(db) as statements:
        assert await OpenSockets(db, check_interval=0).close_refused() == 0
    assert statements == []


@pytest.mark.parametrize(
    "message",
    [
        [],
        None,
        123,
        "x",
        {},
        {"type": None},
        {"type": "subscribe"},
        {"type": "subscribe", "id": "", "payload": {"query": "{ a }"}},
        {"type": "subscribe", "id": "1", "payload": []},
        {"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "operationName": 1}},
        {"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "extensions": "x"}},
        {"type": "complete", "id": 1},
    ],
)
def test_malformed_messages_are_named(message: object) -> None:
    assert (message_problem(message, "subscribe") or "").startswith("Invalid message")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "connection_init"},
        {"type": "ping"},
        {"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "variables": None}},
        {"type": "complete", "id": "1"},
        {"type": "something new"},  # the protocol handler answers unknown types itself
    ],
)
def test_well_formed_messages_pass(message: object) -> None:
    assert message_problem(message, "subscribe") is None


class UnreadSocket:
    """A peer that reads nothing: the close frame never leaves, so `close` never returns."""

    def __init__(self) -> None:
        self.aborted = False

    async def close(self, code: int, reason: str) -> None:
        await asyncio.Event().wait()

    def send_texts_now(self, messages: object) -> bool:
        return False

    def abort(self) -> None:
        self.aborted = True


async def test_a_close_that_cannot_leave_drops_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by the adversarial review: a client that stopped reading for good kept its socket
    (and ~1 MiB of queued frames) open, the 4408 close stuck behind the frames."""
    monkeypatch.setattr(websocket, "UNREAD_CLOSE_GRACE_SECONDS", 0.05)
    peer = UnreadSocket()
    stopped: list[bool] = []

    async def stop() -> None:
        stopped.append(True)

    guard = websocket._Guard(
        cast(Any, None), cast(Any, SimpleNamespace(request=None)), cast(Any, peer), stop
    )
    guard.direct_socket = peer
    await asyncio.wait_for(guard.close(websocket.CLOSE_PONG_TIMEOUT, "Pong timeout"), 2)
    assert stopped == [True]
    assert peer.aborted


def test_an_operation_id_longer_than_any_client_sends_is_refused() -> None:
    """An id is sent back in every frame of its operation and kept while it runs."""
    for length, problem in ((MAX_OPERATION_ID_CHARACTERS, False), (4_000_000, True)):
        message = {"id": "x" * length, "type": "subscribe", "payload": {"query": "{ a }"}}
        assert (message_problem(message, "subscribe") is not None) is problem


def test_only_the_variables_an_operation_declares_are_kept() -> None:
    payload: dict[str, Any] = {
        "query": "subscription S($after: Int) { orderStatusChanged(afterSequence: $after) "
        "{ sequence } } query Q($other: ID) { node(id: $other) { id } }",
        "operationName": "S",
        "variables": {"after": 3, "other": "x", "unused": "y" * 1_000_000},
    }
    assert operation_problem(payload) is None
    assert payload["variables"] == {"after": 3}


@pytest.mark.parametrize(
    ("query", "name", "message"),
    [
        ("query A { __typename }", "Z", "Unknown operation named 'Z'."),
        (
            "query A { __typename } query B { __typename }",
            None,
            "Must provide operation name if query contains multiple operations.",
        ),
        ("fragment F on Query { __typename }", None, "Can't get GraphQL operation type"),
    ],
)
def test_an_operation_the_document_does_not_hold_is_a_bad_request(
    query: str, name: str | None, message: str
) -> None:
    error = operation_problem({"query": query, "operationName": name})
    assert error is not None
    assert error.message == message
    assert error.extensions == {"code": "BAD_REQUEST"}


def test_documents_that_do_not_parse_are_left_to_the_execution() -> None:
    assert operation_problem({"query": "subscription {", "operationName": "Z"}) is None
