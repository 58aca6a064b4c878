"""User data and read-model rows written by orjson hold the value the stdlib would write.

What users rely on: a value saved comes back as the value it was, whatever encoder
wrote it, including what orjson writes differently (NaN, infinities, tuples, int keys,
ints beyond 64 bits, datetimes and other objects via ``str``)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.events import json_bytes
from orchestrator.projections import _jsontext


def _stdlib(value: Any) -> Any:
    """What the stdlib writes for ``value`` (sorted, ``default=str``), parsed back."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats()  # NaN and the infinities too
    | st.text(),  # surrogates and NUL too
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),
    max_leaves=20,
)


@given(json_values)
def test_user_data_json_parses_to_what_the_stdlib_wrote(value: Any) -> None:
    assert _same(json.loads(json_bytes(value)), _stdlib(value))


def test_values_orjson_writes_differently_keep_the_stdlib_s_value() -> None:
    when = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    value = {
        "nan": math.nan,
        "inf": [math.inf, -math.inf],
        "pair": (1, None),
        "ids": {1: "a"},
        "big": 2**70,
        "when": when,
        "text": "héllo \u2028 \x00",
    }
    back = json.loads(json_bytes(value))
    assert math.isnan(back["nan"])
    assert back["inf"] == [math.inf, -math.inf]
    assert back["pair"] == [1, None]
    assert back["ids"] == {"1": "a"}
    assert back["big"] == 2**70
    assert back["when"] == str(when)
    assert back["text"] == "héllo \u2028 \x00"


def test_user_data_json_is_sorted_and_compact() -> None:
    assert json_bytes({"b": [1, 2], "a": {"d": None, "c": "é"}}) == (
        '{"a":{"c":"é","d":null},"b":[1,2]}'.encode()
    )


def test_read_model_json_keeps_what_jsonb_refuses_as_text() -> None:
    text = _jsontext.dumps({"score": math.nan, "top": (math.inf, None), "s": "a\x00b"})
    assert text is not None
    assert json.loads(text) == {"score": "NaN", "top": ["Infinity", None], "s": "a\ufffdb"}


def _stdlib_jsonb_text(value: Any) -> str:
    """What the read model wrote before orjson: the stdlib's C encoder, non-finite
    floats as strings, NUL as U+FFFD."""
    try:
        text = _jsontext._ENCODE(value)
    except ValueError:
        text = _jsontext._ENCODE(_jsontext._finite(value))
    return _jsontext._NUL.sub(r"\1\\ufffd", text)


@given(json_values)
def test_read_model_json_parses_to_what_the_stdlib_wrote(value: Any) -> None:
    text = _jsontext.dumps(value)
    if value is None:  # SQL NULL, not JSON null
        assert text is None
        return
    assert text is not None
    assert json.loads(text) == json.loads(_stdlib_jsonb_text(value))
