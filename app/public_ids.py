"""Public ids: the opaque Relay global ids clients see (base64 of `Type:uuid`), in one place.

Strawberry writes the same encoding for every `Node.id` (`strawberry.relay.to_base64`);
tests/test_public_ids.py holds the two together. Code outside the graph (webhook bodies) uses
this module so that an id in a webhook is the id the API answers to.
"""

import base64
import binascii
import uuid


def encode(type_name: str, row_id: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}:{row_id}".encode()).decode()


def decode(value: str, expected_type: str) -> uuid.UUID:
    """The row id inside a public id of `expected_type`; ValueError if it is not one."""
    try:
        type_name, _, row_id = base64.b64decode(value, validate=True).decode().partition(":")
        if type_name != expected_type:
            raise ValueError(type_name)
        return uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise ValueError(f"not a public id of type {expected_type}") from error
