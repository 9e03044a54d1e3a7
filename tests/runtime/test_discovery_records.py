"""Records: JSON round trips, key layout, and refusal of values that do not fit their key."""

from __future__ import annotations

import pytest

from drivetrain.runtime.records import (
    InstanceRecord,
    ModelCard,
    RecordError,
    decode_record,
    parse_key,
)


def card(**fields: object) -> ModelCard:
    values: dict[str, object] = {
        "name": "tiny",
        "namespace": "team-a",
        "model_types": ["chat", "completions"],
        "instance_id": "abc123",
    }
    values.update(fields)
    return ModelCard.model_validate(values)


def instance(**fields: object) -> InstanceRecord:
    values: dict[str, object] = {
        "instance_id": "abc123",
        "namespace": "team-a",
        "component": "backend",
        "address": "127.0.0.1:4000",
        "transport": "tcp",
        "model_names": ["tiny"],
    }
    values.update(fields)
    return InstanceRecord.model_validate(values)


def test_keys_put_the_namespace_right_after_the_record_kind() -> None:
    assert instance().key == "drivetrain/v1/instances/team-a/backend/abc123"
    assert card().key == "drivetrain/v1/models/team-a/tiny/abc123"


def test_a_served_name_with_a_slash_stays_one_key_segment() -> None:
    key = card(name="Qwen/Qwen3-0.6B").key
    assert key == "drivetrain/v1/models/team-a/Qwen%2FQwen3-0.6B/abc123"
    assert parse_key(key).name == "Qwen/Qwen3-0.6B"


def test_records_round_trip_through_json() -> None:
    for record in (instance(), card(tokenizer="/models/tiny", context_length=2048)):
        parsed, decoded = decode_record(record.key, record.encode())
        assert decoded == record
        assert parsed.instance_id == "abc123"


def test_unknown_fields_from_a_newer_worker_are_ignored() -> None:
    data = card().model_dump() | {"lora": {"name": "x"}}
    assert ModelCard.model_validate(data) == card()


def test_an_unknown_model_type_is_refused_with_the_field_named() -> None:
    with pytest.raises(RecordError, match="model_types"):
        ModelCard.decode(card().encode().replace(b'"chat"', b'"audio"'))


def test_a_value_that_belongs_under_another_key_is_refused() -> None:
    other = card(namespace="team-b")
    with pytest.raises(RecordError, match="holds a record for"):
        decode_record(card().key, other.encode())


@pytest.mark.parametrize(
    "key",
    [
        "drivetrain/v1/models/ns/tiny",  # no instance id
        "drivetrain/v1/models/ns/tiny/1/extra",
        "drivetrain/v2/models/ns/tiny/1",
        "elsewhere",
    ],
)
def test_keys_outside_the_layout_are_refused(key: str) -> None:
    with pytest.raises(RecordError):
        parse_key(key)


def test_empty_namespace_is_a_valid_key_segment() -> None:
    parsed = parse_key(card(namespace="").key)
    assert (parsed.namespace, parsed.name) == ("", "tiny")
