"""An endpoint's mapping read on its own: paths into the event, defaults, the sender's severities."""

import pytest

from apps.hooks import mapping

FIRE = {"fire": ["x"], "summary": "s"}


def fired(rules: dict, event: dict) -> mapping.Mapped:
    return mapping.parse({**FIRE, **rules}).apply({"type": "x", "s": "summary", **event})


@pytest.mark.parametrize(
    ("value", "key"),
    [("abc", "abc"), ("  padded  ", "padded"), (42, "42"), (1.5, "1.5"), (True, "true"), (False, "false")],
)
def test_a_key_may_be_text_a_number_or_a_boolean(value, key):
    assert fired({"key": "id"}, {"id": value}).key == key


@pytest.mark.parametrize("value", [None, "", "   ", {"a": 1}, [1]])
def test_null_empty_objects_and_lists_fall_back_to_the_default(value):
    assert fired({"key": {"path": "id", "default": "fallback"}}, {"id": value}).key == "fallback"


def test_a_number_in_a_path_indexes_a_list():
    event = {"items": [{"id": "first"}, {"id": "second"}]}
    assert fired({"key": "items.1.id"}, event).key == "second"
    assert fired({"key": {"path": "items.5.id", "default": "none"}}, event).key == "none"


def test_a_constant_is_a_default_without_a_path():
    result = fired({"key": {"default": "the-one"}, "labels": {"team": {"default": "db"}}}, {})
    assert result.key == "the-one" and result.alert["labels"] == {"team": "db"}


def test_the_senders_severities_translate_to_the_portals():
    rules = {"key": {"default": "k"}, "severity": "sev", "severities": {"P1": "critical", "low": "info"}}
    assert fired(rules, {"sev": "P1"}).alert["severity"] == "critical"
    assert fired(rules, {"sev": "ERROR"}).alert["severity"] == "error"  # the portal's own, in any case
    with pytest.raises(mapping.MappingError, match='add it to the mapping\'s "severities"'):
        fired(rules, {"sev": "P3"})


def test_the_event_type_may_be_elsewhere():
    rules = mapping.parse({"type": "meta.kind", "resolve": ["closed"], "key": "id"})
    assert rules.apply({"meta": {"kind": "closed"}, "id": 7}).outcome == "resolved"
    assert rules.apply({"type": "closed", "id": 7}).outcome == "stored"


def test_the_example_event_is_one_the_mapping_fires_on():
    rules = mapping.parse({"fire": ["incident.opened"], "key": "data.ref", "summary": "data.title"})
    result = rules.apply(mapping.example_event(rules, "incidents"))
    assert (result.outcome, result.key, result.alert["summary"]) == (
        "fired",
        "example-1",
        "Example event sent to incidents",
    )


def test_without_fire_types_the_example_event_is_stored():
    rules = mapping.parse({})
    assert rules.apply(mapping.example_event(rules, "x")).outcome == "stored"
