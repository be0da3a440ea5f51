"""Text and JSON from clients, made safe to store on both databases: one cleaner for the code base.

PostgreSQL cannot store NUL in text or JSON, and a lone UTF-16 surrogate cannot be encoded as
UTF-8 at all; both are refused here rather than failing in the driver. Metadata is JSON that
reads back the same from SQLite and PostgreSQL and from every client language: objects, arrays,
strings, booleans, null, and finite numbers no larger than JavaScript's safe integers.
"""

import math
from typing import Any

from app.errors import InvalidInput

# 2**53 - 1: beyond it JavaScript clients (and JSON parsers that read numbers as doubles)
# silently change the number, so it would not read back as it was sent.
MAX_JSON_INTEGER = 2**53 - 1
MAX_JSON_DEPTH = 16


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored, or None: NUL or a lone surrogate."""
    if "\x00" in value:
        return "Text must not contain NUL (U+0000)."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Text must be valid Unicode: it contains a lone UTF-16 surrogate."
    return None


def check_text(value: str, field: str | None) -> str:
    problem = text_problem(value)
    if problem:
        raise InvalidInput(problem, field)
    return value


def clean_text(
    value: str, field: str, *, max_length: int, required: bool = True, label: str = "Text"
) -> str:
    """The text trimmed, or InvalidInput when it is unsafe, empty (if required) or too long."""
    cleaned = check_text(value, field).strip()
    if required and not cleaned:
        raise InvalidInput(f"{label} must not be empty.", field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"{label} must be at most {max_length} characters.", field)
    return cleaned


def check_json(value: Any, field: str, depth: int = 0) -> None:
    """InvalidInput unless `value` is JSON that round-trips on both databases (see above)."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"JSON may nest at most {MAX_JSON_DEPTH} levels.", field)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, int):
        if abs(value) > MAX_JSON_INTEGER:
            raise InvalidInput(
                f"JSON numbers must be between -{MAX_JSON_INTEGER} and {MAX_JSON_INTEGER}.", field
            )
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_JSON_INTEGER:
            raise InvalidInput(
                f"JSON numbers must be finite, between -{MAX_JSON_INTEGER} and {MAX_JSON_INTEGER}.",
                field,
            )
    elif isinstance(value, list):
        for item in value:
            check_json(item, field, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput("JSON object keys must be strings.", field)
            check_text(key, field)
            check_json(item, field, depth + 1)
    else:
        raise InvalidInput("Not a JSON value.", field)


def readable_text(value: str) -> str:
    """Stored text as it can be sent: a lone surrogate (older code stored some) becomes U+FFFD,
    where encoding the response would otherwise fail for the whole page."""
    if text_problem(value) is None:
        return value
    replaced = value.replace("\x00", "\ufffd")
    return replaced.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def readable_json(value: Any, depth: int = 0) -> Any:
    """Stored JSON as clients can read it, whatever older code let in: integers beyond the
    safe range become strings (else every response that selects them fails to encode),
    non-finite numbers become null, unencodable text is replaced, and nesting beyond what we
    accept now is cut."""
    if depth > MAX_JSON_DEPTH:
        return None
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return readable_text(value)
    if isinstance(value, int):
        return value if abs(value) <= MAX_JSON_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [readable_json(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            readable_text(str(key)): readable_json(item, depth + 1) for key, item in value.items()
        }
    return readable_text(str(value))
