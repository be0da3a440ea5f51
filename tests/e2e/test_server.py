"""The README's first steps against a real server: demo keys, viewer, GraphiQL, 401."""

import httpx

from tests.e2e.conftest import RunningServer

VIEWER = {"query": "{ viewer { account { slug } mode } }"}


def test_serve_seeds_the_demo_account_and_answers_with_its_keys(server: RunningServer) -> None:
    for mode, expected in (("test", "TEST"), ("live", "LIVE")):
        key = server.demo_key(mode, "standard")
        response = httpx.post(
            f"{server.base_url}/graphql",
            json=VIEWER,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200
        assert response.json()["data"] == {
            "viewer": {"account": {"slug": "demo"}, "mode": expected}
        }


def test_real_server_refuses_requests_without_a_key(server: RunningServer) -> None:
    response = httpx.post(f"{server.base_url}/graphql", json=VIEWER)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_real_server_serves_graphiql_and_probes(server: RunningServer) -> None:
    page = httpx.get(f"{server.base_url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert httpx.get(f"{server.base_url}/readyz").json()["database"] == "ok"


def test_real_server_logs_json_with_request_ids(server: RunningServer) -> None:
    response = httpx.get(f"{server.base_url}/healthz", headers={"X-Request-Id": "e2e-trace-0001"})
    assert response.headers["x-request-id"] == "e2e-trace-0001"
    server.process.terminate()
    server.process.wait(timeout=10)
    assert '"request_id": "e2e-trace-0001"' in server.output()
