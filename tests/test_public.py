"""Public certificate pages over HTTP: HTML and PDF by unguessable id, keyless, 404 otherwise."""

import io
import uuid

import httpx
from pypdf import PdfReader

from app.accounts.models import Account, Mode
from app.certificates.ids import certificate_id
from app.config import Settings
from app.db import Database
from tests.conftest import TEST_SECRET, GraphQLClient
from tests.offsets_fixtures import fulfil, gid, place_order, seed_catalog

SECRET_METADATA = {"internal": "never-print-this-7f3a"}
CERTIFICATE = """query($id: ID!) { order(id: $id) {
  certificate { id publicUrl downloadUrl } allocations { serialRange } } }"""


async def fulfilled_certificate(
    db: Database,
    settings: Settings,
    gql: GraphQLClient,
    account: Account,
    mode: Mode = Mode.TEST,
    description: str = "Offsetting our 2026 offsite",
) -> tuple[uuid.UUID, dict]:  # type: ignore[type-arg]
    order = await place_order(
        db,
        account,
        1_000_000,
        mode,
        description=description,
        metadata=SECRET_METADATA,
        callback_url="https://hooks.example.com/secret-callback",
    )
    assert (await fulfil(db, settings)).fulfilled == 1
    data = (await gql.execute(CERTIFICATE, id=gid("Order", order.id)))["data"]["order"]
    assert data["certificate"] is not None
    return order.id, data


def path_of(url: str) -> str:
    return httpx.URL(url).path


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return " ".join(text.split())


async def test_certificate_page_for_a_test_order(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
) -> None:
    await seed_catalog(db, account)
    order_id, order = await fulfilled_certificate(db, settings, gql, account)
    certificate = order["certificate"]
    assert certificate["id"] == certificate_id(order_id, TEST_SECRET)
    response = await client.get(path_of(certificate["publicUrl"]))  # no API key
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Acme Ltd" in page
    assert "1 t" in page
    assert certificate["id"] in page
    assert "Offsetting our 2026 offsite" in page
    assert "TEST" in page
    assert "NOT A REAL RETIREMENT" in page
    for allocation in order["allocations"]:
        assert allocation["serialRange"] in page
    assert "Rio Doce Forest" in page
    assert "Hellisheidi DAC" in page
    assert "Verra" in page
    for secret in ("never-print-this-7f3a", "internal", "secret-callback", "16.00"):
        assert secret not in page


async def test_certificate_pdf(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
) -> None:
    await seed_catalog(db, account)
    _, order = await fulfilled_certificate(db, settings, gql, account)
    certificate = order["certificate"]
    response = await client.get(path_of(certificate["downloadUrl"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    assert certificate["id"] in text.replace(" ", "")
    for allocation in order["allocations"]:
        assert allocation["serialRange"] in text.replace(" ", "")
    assert "Acme Ltd" in text
    assert "TEST" in text
    assert "never-print-this-7f3a" not in text
    assert "secret-callback" not in text
    assert b"never-print-this-7f3a" not in response.content


async def test_live_certificate_has_no_test_banner(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    live_key: str,
) -> None:
    await seed_catalog(db, account, Mode.LIVE)
    live = GraphQLClient(client, live_key)
    _, order = await fulfilled_certificate(db, settings, live, account, Mode.LIVE)
    page = await client.get(path_of(order["certificate"]["publicUrl"]))
    assert page.status_code == 200
    assert "NOT A REAL RETIREMENT" not in page.text
    assert "[TEST]" not in page.text
    pdf = await client.get(path_of(order["certificate"]["downloadUrl"]))
    assert pdf.status_code == 200
    assert "NOT A REAL RETIREMENT" not in pdf_text(pdf.content)


async def test_user_text_is_escaped_on_the_page(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
) -> None:
    await seed_catalog(db, account)
    _, order = await fulfilled_certificate(
        db, settings, gql, account, description='<script>alert("x")</script> & more'
    )
    page = (await client.get(path_of(order["certificate"]["publicUrl"]))).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page


async def test_unknown_and_unfulfilled_certificates_are_404(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
) -> None:
    await seed_catalog(db, account)
    placed = await place_order(db, account, 3_000_000)  # more than the stock: stays PLACED
    cancelled = await place_order(db, account, 1000)
    cancel = await gql.execute(
        "mutation($id: ID!) { cancelOrder(input: {id: $id}) { userErrors { code } } }",
        id=gid("Order", cancelled.id),
    )
    assert cancel["data"]["cancelOrder"]["userErrors"] == []
    await fulfil(db, settings)
    ids = [
        "0" * 32,
        uuid.uuid4().hex,
        certificate_id(placed.id, TEST_SECRET),
        certificate_id(cancelled.id, TEST_SECRET),
        "garbage",
        "ABCDEF" + "0" * 26,
        "0" * 33,
    ]
    for value in ids:
        for path in (f"/certificates/{value}", f"/certificates/{value}.pdf"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "%PDF" not in response.text
    # A fulfilled order's id under another server secret is not a certificate either.
    _, order = await fulfilled_certificate(db, settings, gql, account)
    forged = certificate_id(uuid.UUID(int=1), "another-secret")
    assert (await client.get(f"/certificates/{forged}")).status_code == 404
    assert (await client.get(path_of(order["certificate"]["publicUrl"]))).status_code == 200
