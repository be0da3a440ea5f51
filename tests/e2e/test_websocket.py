"""The WebSocket transport over real sockets: malformed frames, server pings, and sockets of
revoked keys or suspended accounts being closed."""

import asyncio
import json
import os
import shutil
import socket as socket_module
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import RunningServer, launch
from tests.e2e.test_subscriptions import SUBSCRIPTION, create_order, ws_url

TIMEOUT = 10
PROTOCOLS = {"graphql-transport-ws": "subscribe", "graphql-ws": "start"}

CREATE_KEY = """mutation($name: String!) {
  createApiKey(input: {name: $name}) { secret apiKey { id } userErrors { code } }
}"""
REVOKE_KEY = """mutation($id: ID!) {
  revokeApiKey(input: {id: $id}) { apiKey { revokedAt } userErrors { code } }
}"""


@contextmanager
def sqlite_server_for_module(
    sqlite_template: Path, directory: Path, **env: str
) -> Iterator[RunningServer]:
    """A server on its own copy of the migrated SQLite template, for tests that share it."""
    shutil.copyfile(sqlite_template, directory / "test.db")
    database_url = f"sqlite+aiosqlite:///{directory / 'test.db'}"
    with launch(database_url, directory / "server.log", **env) as server:
        yield server


@pytest.fixture(scope="module")
def sqlite_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server for the frame tests, which change no data."""
    with sqlite_server_for_module(sqlite_template, tmp_path_factory.mktemp("frames")) as server:
        yield server


async def open_socket(
    server: RunningServer, protocol: str, key: str | None = None
) -> ClientConnection:
    socket = await connect(ws_url(server), subprotocols=[protocol])  # type: ignore[list-item]
    if key is not None:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
        assert json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))["type"] == (
            "connection_ack"
        )
    return socket


async def frames_until_close(socket: ClientConnection, within: float = TIMEOUT) -> list[Any]:
    """Every message the server sends until it closes the socket (fails if it does not)."""
    messages: list[Any] = []
    async with asyncio.timeout(within):
        try:
            while True:
                messages.append(json.loads(await socket.recv()))
        except ConnectionClosed:
            return messages


async def start(socket: ClientConnection, protocol: str, operation_id: str = "1") -> None:
    await socket.send(
        json.dumps(
            {
                "id": operation_id,
                "type": PROTOCOLS[protocol],
                "payload": {"query": SUBSCRIPTION, "variables": {}},
            }
        )
    )


async def graphql(server: RunningServer, key: str, query: str, **variables: Any) -> Any:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def new_key(server: RunningServer, name: str) -> tuple[str, str]:
    """A fresh standard test key of the demo account: (secret, global id)."""
    admin = server.demo_key("test", "admin")
    created = (await graphql(server, admin, CREATE_KEY, name=name))["createApiKey"]
    return created["secret"], created["apiKey"]["id"]


MALFORMED_FRAMES: dict[str, str | bytes] = {
    "array": "[]",
    "null": "null",
    "number": "123",
    "string": '"x"',
    "invalid JSON": "{",
    "binary": b"\x00\xff\xfe",
    "deeply nested": "[" * 100_000,
    "type not a string": '{"type": 1}',
    "payload not an object": '{"id": "1", "type": "SUBSCRIBE", "payload": 1}',
    "query not a string": '{"id": "1", "type": "SUBSCRIBE", "payload": {"query": 1}}',
    "id not a string": '{"id": [], "type": "SUBSCRIBE", "payload": {"query": "{ a }"}}',
    "id longer than any client sends": (
        '{"id": "%s", "type": "SUBSCRIBE", "payload": {"query": "{ a }"}}' % ("x" * 10_000)
    ),
    "variables not an object": (
        '{"id": "1", "type": "SUBSCRIBE", "payload": {"query": "{ a }", "variables": []}}'
    ),
}


def for_protocol(frame: str | bytes, protocol: str) -> str | bytes:
    return frame.replace("SUBSCRIBE", PROTOCOLS[protocol]) if isinstance(frame, str) else frame


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("frame", list(MALFORMED_FRAMES.values()), ids=list(MALFORMED_FRAMES))
async def test_a_malformed_frame_closes_the_socket_with_4400(
    sqlite_server: RunningServer, protocol: str, frame: str | bytes
) -> None:
    socket = await open_socket(sqlite_server, protocol, sqlite_server.demo_key("test", "standard"))
    await socket.send(for_protocol(frame, protocol))
    await frames_until_close(socket)
    assert socket.close_code == 4400
    assert (socket.close_reason or "").startswith("Invalid message")


async def test_malformed_frames_before_connection_init_log_no_error(
    sqlite_server: RunningServer,
) -> None:
    for protocol in PROTOCOLS:
        for frame in MALFORMED_FRAMES.values():
            socket = await open_socket(sqlite_server, protocol)
            await socket.send(for_protocol(frame, protocol))
            await frames_until_close(socket)
            assert socket.close_code == 4400, (protocol, frame)
    log = sqlite_server.output()
    assert "Traceback" not in log
    assert '"level": "ERROR"' not in log
    assert '"method": "WEBSOCKET", "path": "/graphql", "status": 101' in log
    assert '"close_code": 4400' in log


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("document", ["subscription {", "garbage", "{"])
async def test_a_document_that_does_not_parse_gets_an_error_not_silence(
    sqlite_server: RunningServer, protocol: str, document: str
) -> None:
    """graphql-transport-ws closes with 4400 and the syntax error (as Strawberry does for an
    invalid subscribe message); the legacy protocol answers an `error` message."""
    socket = await open_socket(sqlite_server, protocol, sqlite_server.demo_key("test", "standard"))
    await socket.send(
        json.dumps({"id": "1", "type": PROTOCOLS[protocol], "payload": {"query": document}})
    )
    messages = await frames_until_close(socket) if protocol == "graphql-transport-ws" else []
    if protocol == "graphql-transport-ws":
        assert socket.close_code == 4400
        assert (socket.close_reason or "").startswith("Syntax Error")
        assert [m for m in messages if m["type"] not in ("ping", "ka")] == []
    else:
        async with asyncio.timeout(TIMEOUT):
            while (message := json.loads(await socket.recv()))["type"] == "ka":
                pass
        await socket.close()
        assert message["type"] == "error", message
        assert message["payload"]["message"].startswith("Syntax Error")
        assert message["payload"]["extensions"]["code"] == "BAD_REQUEST"
    log = sqlite_server.output()
    assert "Exception in worker task" not in log
    assert "Task exception was never retrieved" not in log


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_a_query_and_a_mutation_over_either_protocol_get_one_result_then_complete(
    sqlite_server: RunningServer, protocol: str
) -> None:
    """Apollo's old WebSocketLink sends every operation as `start`: on the legacy protocol a
    query was an INTERNAL_ERROR (Strawberry's `subscribe` refuses queries), logged as a bug."""
    socket = await open_socket(sqlite_server, protocol, sqlite_server.demo_key("test", "admin"))
    answers: dict[str, list[dict]] = {"query": [], "mutation": []}  # type: ignore[type-arg]
    operations = {
        "query": {"query": "{ viewer { mode } }"},
        "mutation": {"query": CREATE_KEY, "variables": {"name": f"ws-{protocol}"}},
    }
    try:
        for operation_id, payload in operations.items():
            message = {"id": operation_id, "type": PROTOCOLS[protocol], "payload": payload}
            await socket.send(json.dumps(message))
            async with asyncio.timeout(TIMEOUT):
                while True:
                    answer = json.loads(await socket.recv())
                    if answer["type"] in ("ka", "ping"):
                        continue
                    answers[operation_id].append(answer)
                    if answer["type"] in ("complete", "error"):
                        break
    finally:
        await socket.close()
    data = "next" if protocol == "graphql-transport-ws" else "data"
    assert [a["type"] for a in answers["query"]] == [data, "complete"], answers
    assert answers["query"][0]["payload"]["data"] == {"viewer": {"mode": "TEST"}}
    assert [a["type"] for a in answers["mutation"]] == [data, "complete"], answers
    created = answers["mutation"][0]["payload"]["data"]["createApiKey"]
    assert created["userErrors"] == []
    assert created["secret"]
    log = sqlite_server.output()
    assert "INTERNAL_ERROR" not in log
    assert '"level": "ERROR"' not in log


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_clients_that_drop_their_socket_mid_send_leave_no_error_in_the_log(
    sqlite_server: RunningServer, protocol: str
) -> None:
    """Operations still sending when their client vanishes: on the legacy protocol each send
    after the close raised out of its task, logged at ERROR as "Task exception was never
    retrieved" (28 in this loop); on graphql-transport-ws the socket's other operations logged
    "Exception in worker task" (Starlette's WebSocketDisconnected: 28 in 5 rounds). Both found
    by adversarial reviews."""
    key = sqlite_server.demo_key("test", "standard")
    kind = PROTOCOLS[protocol]
    for round_ in range(30):
        socket = await open_socket(sqlite_server, protocol, key)
        for number in range(20):
            payload = {"query": "{ viewer { mode } }"}
            await socket.send(json.dumps({"id": f"q{number}", "type": kind, "payload": payload}))
        replay = {"query": SUBSCRIPTION, "variables": {"after": 0}}
        await socket.send(json.dumps({"id": "s", "type": kind, "payload": replay}))
        await asyncio.sleep(0.001 * round_)
        socket.transport.abort()  # type: ignore[attr-defined]
    await asyncio.sleep(1)
    log = sqlite_server.output()
    assert "never retrieved" not in log
    assert "Exception in worker task" not in log
    assert '"level": "ERROR"' not in log


async def test_a_legacy_socket_that_never_initialises_is_closed_with_4408(
    sqlite_server: RunningServer,
) -> None:
    """As graphql-transport-ws does, 10 s after the handshake: no socket stays open without a
    key (found by the adversarial review: the legacy protocol had no deadline)."""
    socket = await open_socket(sqlite_server, "graphql-ws")
    began = time.monotonic()
    assert await frames_until_close(socket, within=20) == []
    assert socket.close_code == 4408
    assert socket.close_reason == "Connection initialisation timeout"
    assert 9.5 < time.monotonic() - began < 15


@pytest.mark.parametrize("subaccount", [5, True, ["x"], {"id": "x"}])
async def test_a_subaccount_id_that_is_not_a_string_is_refused(
    sqlite_server: RunningServer, subaccount: object
) -> None:
    """Not read as "no subaccount", which would act as the parent account."""
    socket = await open_socket(sqlite_server, "graphql-transport-ws")
    key = sqlite_server.demo_key("test", "standard")
    init = {"type": "connection_init", "payload": {"apiKey": key, "subaccountId": subaccount}}
    await socket.send(json.dumps(init))
    assert await frames_until_close(socket) == []
    assert (socket.close_code, socket.close_reason) == (4403, "Forbidden")


async def test_an_empty_subaccount_id_leaves_the_handshakes_header_in_force(
    sqlite_server: RunningServer,
) -> None:
    admin = sqlite_server.demo_key("test", "admin")
    created = await graphql(
        sqlite_server,
        admin,
        "mutation($name: String!) { createSubaccount(input: {name: $name}) { subaccount { id } } }",
        name="Header scoped",
    )
    subaccount = created["createSubaccount"]["subaccount"]["id"]
    socket = await connect(
        ws_url(sqlite_server),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"X-Subaccount-Id": subaccount},
    )
    try:
        init = {"type": "connection_init", "payload": {"apiKey": admin, "subaccountId": ""}}
        await socket.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))["type"] == (
            "connection_ack"
        )
        query = {"query": "{ viewer { subaccount { id } } }"}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
        answer = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        assert answer["payload"]["data"]["viewer"]["subaccount"] == {"id": subaccount}
    finally:
        await socket.close()


async def test_a_message_larger_than_a_request_body_may_be_is_refused_with_1009(
    sqlite_server: RunningServer,
) -> None:
    """CG_MAX_BODY_BYTES (4 MiB) bounds WebSocket messages too, not uvicorn's 16 MiB."""
    socket = await open_socket(sqlite_server, "graphql-transport-ws")
    await socket.send("x" * (4 * 1024 * 1024 + 1))
    await frames_until_close(socket)
    assert socket.close_code == 1009


async def operation_errors(
    socket: ClientConnection, protocol: str, operation_id: str, payload: dict[str, Any]
) -> list[dict[str, Any]]:
    """Start an operation that must be refused; the errors of its `error` message."""
    message = {"id": operation_id, "type": PROTOCOLS[protocol], "payload": payload}
    await socket.send(json.dumps(message))
    answer = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
    while answer["type"] == "ka":  # the legacy protocol's keep-alive
        answer = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
    assert (answer["id"], answer["type"]) == (operation_id, "error")
    payload = answer["payload"]
    return payload if isinstance(payload, list) else [payload]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_an_empty_query_is_a_bad_request_error_and_logs_no_error(
    sqlite_server: RunningServer, protocol: str
) -> None:
    socket = await open_socket(sqlite_server, protocol, sqlite_server.demo_key("test", "standard"))
    try:
        persisted = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
        for operation_id, payload in (
            ("plain", {"query": ""}),
            ("apq", {"query": " ", "extensions": persisted}),
        ):
            errors = await operation_errors(socket, protocol, operation_id, payload)
            assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
            assert "payload.query is empty" in errors[0]["message"]
        # the socket stays open for the next operation
        await start(socket, protocol, "after")
    finally:
        await socket.close()
    log = sqlite_server.output()
    assert "MissingQuery" not in log
    assert '"level": "ERROR"' not in log


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_an_operation_name_the_document_lacks_is_a_bad_request_and_logs_no_error(
    sqlite_server: RunningServer, protocol: str
) -> None:
    """As over HTTP; it was an INTERNAL_ERROR with a logged traceback (adversarial review)."""
    socket = await open_socket(sqlite_server, protocol, sqlite_server.demo_key("test", "standard"))
    try:
        for operation_id, payload in (
            ("unknown", {"query": "query A { __typename }", "operationName": "Z"}),
            ("ambiguous", {"query": "query A { __typename } query B { __typename }"}),
        ):
            errors = await operation_errors(socket, protocol, operation_id, payload)
            assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
            assert "operation name" in errors[0]["message"].lower()
        await start(socket, protocol, "after")  # the socket stays open
    finally:
        await socket.close()
    log = sqlite_server.output()
    assert "CannotGetOperationTypeError" not in log
    assert '"level": "ERROR"' not in log


@pytest.fixture(scope="module")
def pinging_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with sqlite_server_for_module(
        sqlite_template,
        tmp_path_factory.mktemp("pings"),
        CG_WS_PING_INTERVAL_SECONDS="0.3",
        CG_WS_PONG_TIMEOUT_SECONDS="0.5",
    ) as server:
        yield server


async def test_the_server_pings_and_keeps_a_peer_that_answers(
    pinging_server: RunningServer,
) -> None:
    socket = await open_socket(
        pinging_server, "graphql-transport-ws", pinging_server.demo_key("test", "standard")
    )
    began = time.monotonic()
    for _ in range(5):
        assert json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT)) == {"type": "ping"}
        await socket.send(json.dumps({"type": "pong"}))
    # Five rounds outlast what a silent peer is given (0.3 s + 0.5 s), and the socket stays open.
    assert time.monotonic() - began > 1.2
    await socket.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))["type"] in ("pong", "ping")
    assert socket.close_code is None
    await socket.close()


async def test_a_peer_that_does_not_answer_pings_is_closed_with_4408(
    pinging_server: RunningServer,
) -> None:
    socket = await open_socket(
        pinging_server, "graphql-transport-ws", pinging_server.demo_key("test", "standard")
    )
    began = time.monotonic()
    messages = await frames_until_close(socket, within=5)
    assert messages == [{"type": "ping"}]
    assert socket.close_code == 4408
    assert socket.close_reason == "Pong timeout"
    assert time.monotonic() - began < 3


async def test_a_peer_that_reads_nothing_is_dropped_even_when_its_close_cannot_leave(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """Found by the adversarial review: with megabytes queued for a client that had stopped
    reading, the ping waited for room that never came, so no pong deadline ran and the socket
    stayed open for ever. Now the ping and its pong share one deadline, and a close frame that
    cannot leave is given 5 s: the client, reading at last, finds the connection dropped
    without a close frame (1006)."""
    with sqlite_server_for_module(
        sqlite_template,
        tmp_path,
        CG_WS_PING_INTERVAL_SECONDS="5",  # time for the replay to fill every buffer first
        CG_WS_PONG_TIMEOUT_SECONDS="1",
    ) as server:
        key = server.demo_key("test", "standard")
        for _ in range(150):  # 300 events to replay
            await create_order(server, key, "1")
        port = int(server.base_url.rsplit(":", 1)[1])
        raw = socket_module.socket()
        raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", port))
        raw.setblocking(False)
        client = await connect(
            ws_url(server),
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            sock=raw,
            max_queue=1,  # unread messages stop the client reading from the socket
            max_size=None,
            ping_interval=None,
        )
        init = {"type": "connection_init", "payload": {"apiKey": key}}
        await client.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(client.recv(), TIMEOUT))["type"] == (
            "connection_ack"
        )
        # Twenty replays of every event, ~2 KB a frame with its aliases: ~12 MB, more than
        # the socket buffers hold.
        fields = " ".join(
            f"o{n}: order {{ id state createdAt mass {{ amount unit }} }}" for n in range(8)
        )
        document = (
            f"subscription {{ orderStatusChanged(afterSequence: 0) {{ sequence {fields} }} }}"
        )
        for number in range(20):
            message = {"id": str(number), "type": "subscribe", "payload": {"query": document}}
            await client.send(json.dumps(message))
        client_port = raw.getsockname()[1]
        assert server_side_state(port, client_port) == "ESTABLISHED"
        # Ping at 5 s, no pong by 6 s: the 4408 close is queued behind the unread frames;
        # 5 s later the server drops the connection (before: it stayed ESTABLISHED).
        await asyncio.sleep(14)
        assert server_side_state(port, client_port) != "ESTABLISHED"
        await frames_until_close(client, within=60)  # the client, reading at last, is told
        assert client.close_code in (4408, 1006)  # 1006: the close frame never left
        assert '"level": "ERROR"' not in server.output()


TCP_STATES = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "07": "CLOSE"}


def server_side_state(server_port: int, client_port: int) -> str:
    """The kernel's state of the server's end of a loopback connection (/proc/net/tcp); GONE
    once the kernel has forgotten it."""
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            return TCP_STATES.get(fields[3], fields[3])
    return "GONE"


async def test_the_legacy_protocol_gets_keep_alives_at_the_ping_interval(
    pinging_server: RunningServer,
) -> None:
    socket = await open_socket(
        pinging_server, "graphql-ws", pinging_server.demo_key("test", "standard")
    )
    messages = [json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT)) for _ in range(3)]
    await socket.close()
    assert messages == [{"type": "ka"}] * 3


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_revoking_a_key_closes_its_open_sockets_with_4403(
    server: RunningServer, protocol: str
) -> None:
    secret, key_id = await new_key(server, f"revoked over {protocol}")
    socket = await open_socket(server, protocol, secret)
    other = await open_socket(server, protocol, server.demo_key("test", "standard"))
    await start(socket, protocol)
    await start(other, protocol)
    await asyncio.sleep(0.3)
    await graphql(server, server.demo_key("test", "admin"), REVOKE_KEY, id=key_id)
    revoked_at = time.monotonic()
    messages = await frames_until_close(socket, within=6)
    closed_after = time.monotonic() - revoked_at
    # An order placed now reaches the socket of the key that is still valid, not the other.
    await create_order(server, server.demo_key("test", "standard"), "5")
    other_message = json.loads(await asyncio.wait_for(other.recv(), TIMEOUT))
    while other_message["type"] == "ka":
        other_message = json.loads(await asyncio.wait_for(other.recv(), TIMEOUT))
    await other.close()
    assert socket.close_code == 4403
    assert socket.close_reason == "The API key has been revoked."
    assert closed_after < 4  # the check runs every 2 s
    assert [message for message in messages if message["type"] not in ("ka", "ping")] == []
    assert other_message["type"] in ("next", "data")


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_a_revoked_key_cannot_start_an_operation_before_the_next_check(
    database_url: str, tmp_path: Path, protocol: str
) -> None:
    # Checks every 60 s: only the check at the start of an operation can refuse it.
    with launch(database_url, tmp_path / "server.log", CG_WS_ACCESS_CHECK_SECONDS="60") as server:
        secret, key_id = await new_key(server, "revoked before subscribing")
        socket = await open_socket(server, protocol, secret)
        await graphql(server, server.demo_key("test", "admin"), REVOKE_KEY, id=key_id)
        await start(socket, protocol)
        messages = await frames_until_close(socket, within=5)
    assert socket.close_code == 4403
    assert [message for message in messages if message["type"] not in ("ka", "ping")] == []


def suspend(database_url: str, slug: str, status: str = "suspend") -> None:
    environment = {**os.environ, "CG_DATABASE_URL": database_url, "CG_SECRET_KEY": "e2e-secret"}
    subprocess.run(
        [sys.executable, "-m", "app", "accounts", status, slug],
        check=True,
        env=environment,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_suspending_an_account_closes_its_sockets_and_refuses_new_ones(
    server: RunningServer, database_url: str, protocol: str
) -> None:
    socket = await open_socket(server, protocol, server.demo_key("test", "standard"))
    await start(socket, protocol)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(suspend, database_url, "demo")
    suspended_at = time.monotonic()
    messages = await frames_until_close(socket, within=6)
    closed_after = time.monotonic() - suspended_at
    assert socket.close_code == 4403
    assert socket.close_reason == "The account is suspended."
    assert closed_after < 4
    assert [message for message in messages if message["type"] not in ("ka", "ping")] == []

    refused = await connect(ws_url(server), subprotocols=[protocol])  # type: ignore[list-item]
    key = server.demo_key("test", "standard")
    await refused.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
    answers = await frames_until_close(refused)
    if protocol == "graphql-transport-ws":
        assert refused.close_code == 4403
    else:  # the legacy protocol refuses with a connection_error message
        assert answers[0]["type"] == "connection_error"
        assert answers[0]["payload"]["message"] == "The account is suspended."


async def test_a_second_connection_init_on_the_legacy_protocol_closes_with_4429(
    sqlite_server: RunningServer,
) -> None:
    # Else the second key would take over the socket's running operations and its checks.
    socket = await open_socket(
        sqlite_server, "graphql-ws", sqlite_server.demo_key("test", "standard")
    )
    admin = sqlite_server.demo_key("test", "admin")
    await socket.send(json.dumps({"type": "connection_init", "payload": {"apiKey": admin}}))
    messages = await frames_until_close(socket)
    assert socket.close_code == 4429
    assert [message for message in messages if message["type"] != "ka"] == []


async def test_a_document_over_the_size_limit_is_refused_with_a_reason(
    sqlite_server: RunningServer,
) -> None:
    socket = await open_socket(
        sqlite_server, "graphql-transport-ws", sqlite_server.demo_key("test", "standard")
    )
    try:
        query = "{ viewer { mode } } #" + "x" * 70_000
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        async with asyncio.timeout(TIMEOUT):
            while (message := json.loads(await socket.recv()))["type"] == "ping":
                pass
    finally:
        await socket.close()
    assert message["type"] == "error", message
    assert message["payload"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "65,536 characters" in message["payload"][0]["message"]


async def test_closing_a_socket_while_a_replay_is_sent_logs_no_error(
    sqlite_server: RunningServer,
) -> None:
    key = sqlite_server.demo_key("test", "standard")
    for _ in range(3):
        await create_order(sqlite_server, key, "1")
    await asyncio.sleep(1.0)
    for _ in range(3):
        socket = await open_socket(sqlite_server, "graphql-transport-ws", key)
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": {"after": 0}},
                }
            )
        )
        await socket.recv()
        await socket.close()
    await asyncio.sleep(0.5)
    assert "Exception in worker task" not in sqlite_server.output()
