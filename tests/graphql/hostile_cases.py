"""The hostile-input table of issue 7: one request per row and what its answer must be.

Expectations are what the issue asks for: a clear INVALID_INPUT naming the field (as a
userError or a top-level error with `extensions.code`), "not found" (null) for ids of no type
of ours, HTTP 400 with a GraphQL error body for malformed bodies — never INTERNAL_ERROR or 5xx.
test_hostile_inputs.py sends each row in-process; tests/e2e/test_hostile_latency.py fires them
all at a real server while timing a cheap query.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.graphql.hostile import (
    FOREIGN_IDS,
    LONE_SURROGATE,
    NAIVE_DATETIME,
    NUL,
    b64,
    deep_json,
)

HOSTILE_BUDGET_MS = 200
VIEWER = "{ viewer { mode } }"

USER_ERRORS = "userErrors { code field message }"
ORDER_BY_MASS = f"""mutation($input: CreateOrderByMassInput!) {{
  createOrderByMass(input: $input) {{ order {{ id description metadata }} {USER_ERRORS} }} }}"""
ORDER_BY_VALUE = f"""mutation($input: CreateOrderByValueInput!) {{
  createOrderByValue(input: $input) {{ order {{ id }} {USER_ERRORS} }} }}"""
QUOTE_BY_MASS = f"""query($input: QuoteByMassInput!) {{
  quoteByMass(input: $input) {{ quote {{ totalCost {{ amount }} }} {USER_ERRORS} }} }}"""
QUOTE_BY_VALUE = f"""query($input: QuoteByValueInput!) {{
  quoteByValue(input: $input) {{ quote {{ mass {{ amount }} }} {USER_ERRORS} }} }}"""
ESTIMATE = {
    kind: f"""mutation($input: Estimate{kind}Input!) {{
  estimate{kind}(input: $input) {{
    estimate {{ id totalEmission {{ amount }} }} {USER_ERRORS} }} }}"""
    for kind in ("Electricity", "Freight", "GroundTransport")
}
RIDE_ORDER = f"""mutation($input: CreateRideOrderInput!) {{
  createRideOrder(input: $input) {{ order {{ id }} {USER_ERRORS} }} }}"""
ADD_CREDIT_BATCH = f"""mutation($input: AddCreditBatchInput!) {{
  addCreditBatch(input: $input) {{ creditBatch {{ id }} {USER_ERRORS} }} }}"""
WEBHOOK_ENDPOINT = f"""mutation($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{ webhookEndpoint {{ id }} {USER_ERRORS} }} }}"""
SUBACCOUNT = f"""mutation($input: CreateSubaccountInput!) {{
  createSubaccount(input: $input) {{ subaccount {{ id }} {USER_ERRORS} }} }}"""
API_KEY = f"""mutation($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ secret {USER_ERRORS} }} }}"""
PROJECT = f"""mutation($input: CreateProjectInput!) {{
  createProject(input: $input) {{ project {{ id }} {USER_ERRORS} }} }}"""
NODE = "query($id: ID!) { node(id: $id) { id } }"
ORDERS = """query($filter: OrdersFilter) {
  orders(filter: $filter) { totalCount edges { node { id metadata } } } }"""

# Placeholder in a row's variables for the seeded project's id.
PROJECT_ID = "<project id>"


def mass(amount: object, unit: str = "KG", **extra: object) -> dict[str, object]:
    return {"input": {"mass": {"amount": amount, "unit": unit}, **extra}}


def one_kg(**extra: object) -> dict[str, object]:
    return mass("1", "KG", **extra)


def value(amount: object, currency: str = "USD") -> dict[str, object]:
    return {"input": {"value": {"amount": amount, "currency": currency}}}


def body(query: str, variables: dict[str, object] | None = None) -> bytes:
    """JSON as Python writes it: ASCII, so a lone surrogate travels as its `\\ud800` escape, and
    NaN/Infinity as the bare words some clients emit."""
    document: dict[str, object] = {"query": query}
    if variables is not None:
        document["variables"] = variables
    return json.dumps(document, ensure_ascii=True).encode()


def raw_variables(query: str, variables_json: str) -> bytes:
    """A body whose variables are given as JSON text (numbers Python would not write)."""
    query_json = json.dumps(query).encode()
    return b'{"query": ' + query_json + b', "variables": ' + variables_json.encode() + b"}"


# --- what an answer must look like ------------------------------------------------------------


def error_codes(payload: Any) -> list[str]:
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return [
        str((error.get("extensions") or {}).get("code"))
        for error in errors or []
        if isinstance(error, dict)
    ]


def user_errors_in(value: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "userErrors" and isinstance(child, list):
                found += [error for error in child if isinstance(error, dict)]
            else:
                found += user_errors_in(child)
    elif isinstance(value, list):
        for child in value:
            found += user_errors_in(child)
    return found


def has_errors(payload: Any) -> bool:
    if not isinstance(payload, dict):
        return True
    return bool(payload.get("errors")) or bool(user_errors_in(payload.get("data")))


Expectation = Callable[[httpx.Response], None]


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise AssertionError(
            f"HTTP {response.status_code}, body not JSON: {response.text[:300]}"
        ) from error


def assert_no_internal_error(response: httpx.Response, payload: Any) -> None:
    assert response.status_code < 500, f"HTTP {response.status_code}: {response.text[:300]}"
    codes = error_codes(payload) + [str(e.get("code")) for e in user_errors_in(payload.get("data"))]
    assert "INTERNAL_ERROR" not in codes, payload


def refused(*codes: str, field: str | None = None, or_400: bool = False) -> Expectation:
    """A clear refusal with one of `codes`, as a userError or a top-level error, naming `field`
    (or, when `or_400`, HTTP 400 for a body that is not JSON the spec accepts: NaN, Infinity,
    numbers beyond a float, lone surrogates, nesting beyond the parser's depth)."""
    wanted = set(codes)

    def expect(response: httpx.Response) -> None:
        payload = json_of(response)
        if or_400 and response.status_code == 400 and payload.get("errors"):
            return
        assert_no_internal_error(response, payload)
        assert response.status_code == 200, f"HTTP {response.status_code}: {payload}"
        user_errors = [e for e in user_errors_in(payload.get("data")) if e.get("code") in wanted]
        top = [
            e
            for e in payload.get("errors") or []
            if (e.get("extensions") or {}).get("code") in wanted
        ]
        assert user_errors or top, f"expected {sorted(wanted)}, got {payload}"
        if field is not None:
            # The field is named by the userError, by extensions.field or the message, or, for a
            # literal refused at validation, pointed at by the error's `locations`.
            named = [str(e.get("field")) for e in user_errors] + [
                f"{(e.get('extensions') or {}).get('field')} {e.get('message')}" for e in top
            ]
            located = any(e.get("locations") and not e.get("path") for e in top)
            assert located or any(field in text for text in named), (
                f"no error names {field!r}: {payload}"
            )

    return expect


def invalid(field: str, *, or_400: bool = False) -> Expectation:
    return refused("INVALID_INPUT", field=field, or_400=or_400)


def not_found(root: str) -> Expectation:
    """`root` answers null; the only error allowed is NOT_FOUND."""

    def expect(response: httpx.Response) -> None:
        payload = json_of(response)
        assert_no_internal_error(response, payload)
        assert response.status_code == 200, payload
        assert (payload.get("data") or {}).get(root, "missing") is None, payload
        assert set(error_codes(payload)) <= {"NOT_FOUND"}, payload

    return expect


def answered_or_invalid(root: str) -> Expectation:
    """A well-formed answer, or INVALID_INPUT; nothing else."""

    def expect(response: httpx.Response) -> None:
        payload = json_of(response)
        assert_no_internal_error(response, payload)
        assert response.status_code == 200, payload
        if payload.get("errors"):
            assert set(error_codes(payload)) == {"INVALID_INPUT"}, payload
        else:
            assert (payload.get("data") or {}).get(root) is not None, payload

    return expect


def bad_request(response: httpx.Response) -> None:
    """HTTP 400 with a GraphQL error body, as GraphQL over HTTP says for a malformed request."""
    assert response.status_code == 400, f"HTTP {response.status_code}: {response.text[:300]}"
    payload = json_of(response)
    errors = payload.get("errors")
    assert isinstance(errors, list), payload
    assert errors, payload
    assert all(isinstance(e, dict) and isinstance(e.get("message"), str) for e in errors), payload
    assert "data" not in payload or payload["data"] is None, payload


def request_error(response: httpx.Response) -> None:
    """Not executed: HTTP 400, or 200 with errors and no data (GraphQL over HTTP allows both for
    application/json)."""
    payload = json_of(response)
    assert_no_internal_error(response, payload)
    assert response.status_code in (200, 400), payload
    assert payload.get("errors"), payload
    assert payload.get("data") is None, payload


@dataclass(frozen=True)
class Case:
    id: str
    content: bytes
    expect: Expectation


DEEP = 50_000
CASES = [
    # Decimals: refused by form, digits and exponent before any arithmetic.
    Case("quoteByMass 1e999999 G", body(QUOTE_BY_MASS, mass("1e999999", "G")), invalid("amount")),
    Case("quoteByValue 1e999999 USD", body(QUOTE_BY_VALUE, value("1e999999")), invalid("amount")),
    Case("order 1e999999 T", body(ORDER_BY_MASS, mass("1e999999", "T")), invalid("amount")),
    Case("order 1e999999 KG", body(ORDER_BY_MASS, mass("1e999999", "KG")), invalid("amount")),
    Case("order 1E+1000000 KG", body(ORDER_BY_MASS, mass("1E+1000000", "KG")), invalid("amount")),
    Case(
        "order 1E+1000000 KG literal",
        body(
            'mutation { createOrderByMass(input: {mass: {amount: "1E+1000000", unit: KG}}) '
            f"{{ order {{ id }} {USER_ERRORS} }} }}"
        ),
        invalid("amount"),
    ),
    Case(
        "order JSON number 1e999999",
        raw_variables(ORDER_BY_MASS, '{"input": {"mass": {"amount": 1e999999, "unit": "KG"}}}'),
        invalid("amount", or_400=True),
    ),
    Case("order 5000 digits", body(ORDER_BY_MASS, mass("9" * 5_000, "G")), invalid("amount")),
    Case("orderByValue 1e999999", body(ORDER_BY_VALUE, value("1e999999")), invalid("amount")),
    Case(
        "electricity 1e400 kWh",
        body(ESTIMATE["Electricity"], {"input": {"countryCode": "GB", "energyKwh": "1e400"}}),
        invalid("energyKwh"),
    ),
    Case(
        "freight 1e400 km",
        body(
            ESTIMATE["Freight"],
            {
                "input": {
                    "mass": {"amount": "1", "unit": "T"},
                    "legs": [{"distanceKm": "1e400", "mode": "ROAD"}],
                }
            },
        ),
        invalid("distanceKm"),
    ),
    Case(
        "freight 1e999999 T",
        body(
            ESTIMATE["Freight"],
            {
                "input": {
                    "mass": {"amount": "1e999999", "unit": "T"},
                    "legs": [{"distanceKm": "100", "mode": "ROAD"}],
                }
            },
        ),
        invalid("amount"),
    ),
    Case(
        "ground 1e400 km",
        body(
            ESTIMATE["GroundTransport"],
            {"input": {"distanceKm": "1e400", "vehicleType": "PASSENGER_CAR_VAN_OR_SUV"}},
        ),
        invalid("distanceKm"),
    ),
    Case(
        "ride 1e400 km", body(RIDE_ORDER, {"input": {"distanceKm": "1e400"}}), invalid("distanceKm")
    ),
    Case(
        "addCreditBatch 1e400 T",
        body(
            ADD_CREDIT_BATCH,
            {
                "input": {
                    "projectId": PROJECT_ID,
                    "vintage": 2024,
                    "serialPrefix": "HOSTILE-2024",
                    "quantity": {"amount": "1e400", "unit": "T"},
                }
            },
        ),
        invalid("amount"),
    ),
    *(
        Case(f"order {word}", body(ORDER_BY_MASS, mass(word)), invalid("amount"))
        for word in ("NaN", "sNaN", "Infinity", "-Infinity")
    ),
    Case(
        "order -0",
        body(ORDER_BY_MASS, mass("-0")),
        refused("INVALID_INPUT", "QUANTITY_NOT_POSITIVE", field="amount"),
    ),
    Case("order 1.0001 G", body(ORDER_BY_MASS, mass("1.0001", "G")), invalid("amount")),
    Case("value 10.001 USD", body(ORDER_BY_VALUE, value("10.001")), invalid("amount")),
    Case("value 1.5 JPY", body(ORDER_BY_VALUE, value("1.5", "JPY")), invalid("amount")),
    Case("value NaN USD", body(QUOTE_BY_VALUE, value("NaN")), invalid("amount")),
    # Ids that decode to no type of ours: not found, never an error.
    Case("node(id: 12345)", body("{ node(id: 12345) { id } }"), not_found("node")),
    *(
        Case(f"node {global_id!r}", body(NODE, {"id": global_id}), not_found("node"))
        for global_id in FOREIGN_IDS
    ),
    *(
        Case(
            f"{root} of Foo:bar",
            body(f'{{ {root}(id: "{b64("Foo:bar")}") {{ id }} }}'),
            not_found(root),
        )
        for root in ("order", "estimate", "project", "customerOrder")
    ),
    # Dates.
    Case(
        "orders createdAfter without zone",
        body(ORDERS, {"filter": {"createdAfter": NAIVE_DATETIME}}),
        invalid("createdAfter"),
    ),
    Case(
        "orders createdAfter year 1 +14:00",
        body(ORDERS, {"filter": {"createdAfter": "0001-01-01T00:00:00+14:00"}}),
        answered_or_invalid("orders"),
    ),
    Case(
        "orders createdBefore year 9999 -14:00",
        body(ORDERS, {"filter": {"createdBefore": "9999-12-31T23:59:59-14:00"}}),
        answered_or_invalid("orders"),
    ),
    # URLs: checked fully at creation.
    Case(
        "callbackUrl http://[::1/",
        body(ORDER_BY_MASS, one_kg(callbackUrl="http://[::1/")),
        invalid("callbackUrl"),
    ),
    Case(
        "callbackUrl port 99999",
        body(ORDER_BY_MASS, one_kg(callbackUrl="http://example.com:99999/")),
        invalid("callbackUrl"),
    ),
    Case(
        "webhook endpoint http://[::1/",
        body(WEBHOOK_ENDPOINT, {"input": {"url": "http://[::1/"}}),
        invalid("url"),
    ),
    Case(
        "webhook endpoint port 99999",
        body(WEBHOOK_ENDPOINT, {"input": {"url": "http://example.com:99999/"}}),
        invalid("url"),
    ),
    # Text: NUL and lone surrogates refused on both databases.
    Case(
        "description lone surrogate",
        body(ORDER_BY_MASS, one_kg(description=f"a{LONE_SURROGATE}b")),
        invalid("description", or_400=True),
    ),
    Case(
        "description NUL",
        body(ORDER_BY_MASS, one_kg(description=f"a{NUL}b")),
        invalid("description"),
    ),
    Case(
        "metadata key lone surrogate",
        body(ORDER_BY_MASS, one_kg(metadata={f"k{LONE_SURROGATE}": 1})),
        invalid("metadata", or_400=True),
    ),
    Case(
        "metadata value lone surrogate",
        body(ORDER_BY_MASS, one_kg(metadata={"k": LONE_SURROGATE})),
        invalid("metadata", or_400=True),
    ),
    Case(
        "metadata key NUL",
        body(ORDER_BY_MASS, one_kg(metadata={f"k{NUL}": 1})),
        invalid("metadata"),
    ),
    Case(
        "metadata value NUL",
        body(ORDER_BY_MASS, one_kg(metadata={"k": f"v{NUL}"})),
        invalid("metadata"),
    ),
    Case(
        "idempotencyKey NUL",
        body(ORDER_BY_MASS, one_kg(idempotencyKey=f"k{NUL}")),
        invalid("idempotencyKey"),
    ),
    # The schema has no beneficiary input yet; these are the other names a client sets.
    Case("subaccount name NUL", body(SUBACCOUNT, {"input": {"name": f"a{NUL}"}}), invalid("name")),
    Case(
        "subaccount name lone surrogate",
        body(SUBACCOUNT, {"input": {"name": LONE_SURROGATE}}),
        invalid("name", or_400=True),
    ),
    Case("api key name NUL", body(API_KEY, {"input": {"name": f"a{NUL}"}}), invalid("name")),
    Case(
        "project description NUL",
        body(
            PROJECT,
            {
                "input": {
                    "name": "P",
                    "type": "BIOCHAR",
                    "registry": "Puro.earth",
                    "registryId": "P-9",
                    "country": "FI",
                    "description": f"x{NUL}",
                }
            },
        ),
        invalid("description"),
    ),
    # Metadata: JSON that round-trips on both databases, at most 512 bytes.
    Case(
        "metadata NaN",
        raw_variables(
            ORDER_BY_MASS,
            '{"input": {"mass": {"amount": "1", "unit": "KG"}, "metadata": {"n": NaN}}}',
        ),
        invalid("metadata", or_400=True),
    ),
    Case(
        "metadata Infinity",
        raw_variables(
            ORDER_BY_MASS,
            '{"input": {"mass": {"amount": "1", "unit": "KG"}, "metadata": {"n": -Infinity}}}',
        ),
        invalid("metadata", or_400=True),
    ),
    Case(
        "metadata 1e400",
        raw_variables(
            ORDER_BY_MASS,
            '{"input": {"mass": {"amount": "1", "unit": "KG"}, "metadata": {"n": 1e400}}}',
        ),
        invalid("metadata", or_400=True),
    ),
    Case(
        "metadata 2**64",
        body(ORDER_BY_MASS, one_kg(metadata={"n": 18_446_744_073_709_551_616})),
        invalid("metadata"),
    ),
    Case(
        "metadata 2**64 literal",
        body(
            'mutation { createOrderByMass(input: {mass: {amount: "1", unit: KG}, '
            f"metadata: {{n: 18446744073709551616}}}}) {{ order {{ id }} {USER_ERRORS} }} }}"
        ),
        invalid("metadata"),
    ),
    Case(
        "metadata 1e400 literal",
        body(
            'mutation { createOrderByMass(input: {mass: {amount: "1", unit: KG}, '
            f"metadata: {{n: 1e400}}}}) {{ order {{ id }} {USER_ERRORS} }} }}"
        ),
        invalid("metadata"),
    ),
    Case(
        "metadata 10,000 deep",
        raw_variables(
            ORDER_BY_MASS,
            '{"input": {"mass": {"amount": "1", "unit": "KG"}, "metadata": {"a": '
            + deep_json(10_000)
            + "}}}",
        ),
        invalid("metadata", or_400=True),
    ),
    Case(
        "metadata over 512 bytes",
        body(ORDER_BY_MASS, one_kg(metadata={"x": "a" * 600})),
        invalid("metadata"),
    ),
    Case(
        "metadata not an object",
        body(ORDER_BY_MASS, one_kg(metadata=[1, 2, 3])),
        invalid("metadata"),
    ),
    # Bodies: 400 with a GraphQL error body, whatever their shape.
    *(
        Case(f"body {name}", content, bad_request)
        for name, content in (
            ("a JSON string", b'"x"'),
            ("a JSON number", b"123"),
            ("JSON null", b"null"),
            ("an empty JSON list", b"[]"),
            ("JSON true", b"true"),
            ("not UTF-8", b"\xff\xfe\xfa not utf-8"),
            ("with a non-UTF-8 query", b'{"query": "\xff"}'),
            ("50,000-deep JSON", b"[" * DEEP + b"]" * DEEP),
            (
                "with 50,000-deep variables",
                b'{"query": "{ viewer { mode } }", "variables": ' + deep_json(DEEP).encode() + b"}",
            ),
            ("without query", b"{}"),
            ("with a number for query", b'{"query": 1}'),
            ("with a null query", b'{"query": null}'),
            ("with a list for query", b'{"query": ["{ viewer { mode } }"]}'),
            ("with a list for variables", b'{"query": "{ viewer { mode } }", "variables": []}'),
            ("with a string for variables", b'{"query": "{ viewer { mode } }", "variables": "x"}'),
            ("with a number for variables", b'{"query": "{ viewer { mode } }", "variables": 5}'),
            (
                "with a number for operationName",
                b'{"query": "{ viewer { mode } }", "operationName": 5}',
            ),
            (
                "with a string for extensions",
                b'{"query": "{ viewer { mode } }", "extensions": "x"}',
            ),
            ("truncated JSON", b'{"query": "{ viewer'),
            ("empty", b""),
        )
    ),
    Case(
        "two operations, no operationName",
        body("query A { viewer { mode } } query B { viewer { admin } }"),
        request_error,
    ),
    Case(
        "operationName of no operation",
        json.dumps({"query": "query A { viewer { mode } }", "operationName": "B"}).encode(),
        request_error,
    ),
]


def with_ids(content: bytes, project_id: str) -> bytes:
    """A row's body with the seeded world's ids in place of the placeholders."""
    return content.replace(PROJECT_ID.encode(), project_id.encode())
