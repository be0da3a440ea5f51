"""Public ids: one encoding, the same one Strawberry writes for every Node id."""

import uuid

import pytest
from strawberry import relay

from app import public_ids


def test_public_ids_are_the_relay_global_ids_the_graph_answers_to() -> None:
    row_id = uuid.uuid4()
    encoded = public_ids.encode("Order", row_id)
    assert encoded == relay.to_base64("Order", str(row_id))
    assert relay.GlobalID.from_id(encoded) == relay.GlobalID("Order", str(row_id))
    assert public_ids.decode(encoded, "Order") == row_id


@pytest.mark.parametrize(
    "value", ["", "not base64!", "T3JkZXI6bm9wZQ==", public_ids.encode("Bundle", uuid.uuid4())]
)
def test_a_malformed_or_foreign_id_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a public id of type Order"):
        public_ids.decode(value, "Order")
