"""The batch serialiser writes exactly what a per-event json.dumps of LogEvent.to_dict would."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sparse_attention_hub.metric_logging import LogEvent
from sparse_attention_hub.metric_logging.serialize import encode_dicts, events_to_jsonl

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["}, {", '"}, {"', "{", "}", "\\", "\n", "é", "\u2028"])
)
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_metadata = st.dictionaries(st.text(max_size=8), _json_values, max_size=4)
_events = st.lists(
    st.builds(
        LogEvent,
        timestamp=st.floats(0, 4e9, allow_nan=False),
        metric=st.sampled_from(["density", "error", 'odd "name"']),
        value=_scalars,
        metadata=_metadata,
        location=st.sampled_from(["pkg.mod.Class.method", "pkg.mod.function"]),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_events)
def test_batch_lines_equal_per_event_dicts(events: list[LogEvent]):
    text = events_to_jsonl(events)
    lines = text.splitlines()
    assert len(lines) == len(events)
    assert text == "" or text.endswith("\n")
    for line, event in zip(lines, events, strict=True):
        record = json.loads(line)
        expected = event.to_dict()
        assert record == expected
        parsed = datetime.fromisoformat(record["timestamp"])
        assert abs(parsed.timestamp() - event.timestamp) <= 1e-6


@settings(max_examples=60, deadline=None)
@given(st.lists(_metadata, max_size=10))
def test_encode_dicts_matches_json_dumps(dicts: list[dict[str, Any]]):
    assert [json.loads(text) for text in encode_dicts(dicts)] == dicts


def test_encode_dicts_falls_back_when_a_value_contains_the_boundary():
    dicts: list[dict[str, Any]] = [{"a": "x}, {y"}, {}, {"b": [{"c": 1}, {"d": 2}]}]
    assert [json.loads(text) for text in encode_dicts(dicts)] == dicts


def test_unencodable_metadata_keys_and_values_become_strings():
    metadata: dict[Any, Any] = {("tuple", "key"): {1, 2}, "x": object}
    event = LogEvent(0.0, "m", 1.0, metadata, "loc")
    record = json.loads(events_to_jsonl([event]))
    assert record["metadata"]["('tuple', 'key')"] in ([1, 2], "{1, 2}")
    assert record["metadata"]["x"] == str(object)


def test_non_finite_values():
    events = [LogEvent(0.0, "m", value, {}, "loc") for value in (float("inf"), float("-inf"))]
    values = [json.loads(line)["value"] for line in events_to_jsonl(events).splitlines()]
    assert values == [float("inf"), float("-inf")]
