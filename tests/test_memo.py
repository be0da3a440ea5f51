"""The bounded memo of the hot paths: never over its limit, emptied when full."""

from app.memo import Memo


def test_a_memo_keeps_values_up_to_its_limit_then_starts_again() -> None:
    memo: Memo[str, int] = Memo(3)
    assert [memo.keep(key, number) for number, key in enumerate("abc")] == [0, 1, 2]
    assert memo == {"a": 0, "b": 1, "c": 2}
    assert memo.keep("d", 3) == 3  # full: emptied, then the new value kept
    assert memo == {"d": 3}
    assert memo.get("a") is None
