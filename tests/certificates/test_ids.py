"""Certificate ids: deterministic, unguessable, and cheap to reject when malformed."""

import string
import uuid

import pytest

from app.certificates.ids import (
    CERTIFICATE_ID_LENGTH,
    certificate_id,
    is_well_formed_certificate_id,
)

ORDER_ID = uuid.UUID("0b8f3c1e-5d4a-4e7b-9c2f-1a2b3c4d5e6f")
SECRET = "server-secret"


def test_same_order_and_secret_always_give_the_same_id() -> None:
    assert certificate_id(ORDER_ID, SECRET) == certificate_id(ORDER_ID, SECRET)


def test_id_is_128_bits_of_lowercase_hex() -> None:
    value = certificate_id(ORDER_ID, SECRET)
    assert CERTIFICATE_ID_LENGTH == 32
    assert len(value) == CERTIFICATE_ID_LENGTH
    assert set(value) <= set(string.hexdigits.lower())


def test_different_orders_get_different_ids() -> None:
    ids = {certificate_id(uuid.uuid4(), SECRET) for _ in range(1000)}
    assert len(ids) == 1000


def test_a_different_secret_gives_a_different_id() -> None:
    assert certificate_id(ORDER_ID, SECRET) != certificate_id(ORDER_ID, SECRET + "x")


def test_id_does_not_reveal_the_order_id() -> None:
    value = certificate_id(ORDER_ID, SECRET)
    assert value not in ORDER_ID.hex
    assert ORDER_ID.hex[:8] not in value


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        certificate_id(ORDER_ID, "")


def test_derived_ids_are_well_formed() -> None:
    assert is_well_formed_certificate_id(certificate_id(ORDER_ID, SECRET))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0" * 31,
        "0" * 33,
        "A" * 32,
        "g" * 32,
        "0" * 31 + "\n",
        "0" * 32 + "\n",
        " " + "0" * 31,
        str(ORDER_ID),
        "../../etc/passwd",
        "0" * 32 + ".pdf",
    ],
)
def test_malformed_ids_are_rejected(value: str) -> None:
    assert not is_well_formed_certificate_id(value)
