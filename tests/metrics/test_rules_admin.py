"""Metric rules in the admin: validation on save, the list with evaluation state, "evaluate now",
the audit trail of edits (not of evaluations), and alerts resolved when a rule is retired."""

from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.metrics.models import MetricRule
from apps.metrics.rules import rules_evaluate
from tests.metrics.rules_support import START, make_rule, record

pytestmark = pytest.mark.django_db

FORM = {
    "name": "load-high",
    "enabled": "on",
    "severity": "warning",
    "series": "test.load",
    "aggregation": "avg",
    "window_seconds": "60",
    "comparison": ">",
    "threshold": "4",
    "for_seconds": "0",
    "summary": "Load {value:.1f} over {threshold} for {window} on {series}",
    "labels": '{"team": "web"}',
}


@pytest.fixture(autouse=True)
def clock():
    """The samples are recorded around START; the clock runs on from there."""
    with time_machine.travel(START):
        yield


def add(client: Client, **fields: str):
    return client.post(reverse("admin:metrics_metricrule_add"), {**FORM, **fields})


def events(rule: MetricRule) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(resource_type="metrics.metricrule", resource_id=str(rule.pk)).order_by("id"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"summary": "Load {load}"}, "Unknown field {load}"),
        ({"summary": "Load {value.__class__}"}, "Unknown field {value.__class__}"),
        ({"summary": "Load {0}"}, "Unknown field {0}"),
        ({"summary": "Load {value:d}"}, "The template does not render"),
        ({"summary": "Load {value"}, "The template does not render"),
        ({"summary": "Load {value:{threshold}}"}, "Nested fields"),
        ({"labels": '["team"]'}, "Labels are a JSON object"),
        ({"labels": '{"bad name": "x"}'}, "must start with a letter"),
        ({"labels": '{"series": "x"}'}, "is set by the rule itself"),
        ({"labels": '{"team": {"a": 1}}'}, "needs a plain value"),
        ({"window_seconds": "0"}, "greater than or equal to 1"),
        ({"severity": "fatal"}, "Select a valid choice"),
    ],
)
def test_a_bad_rule_is_refused_with_a_clear_message(superuser_client, fields, message):
    response = add(superuser_client, **fields)

    assert response.status_code == HTTPStatus.OK  # the form again, not a 500
    assert message in response.content.decode()
    assert not MetricRule.objects.filter(name="load-high").exists()


def test_a_valid_rule_is_saved_and_its_edits_audited_but_not_its_evaluations(superuser_client):
    assert add(superuser_client).status_code == HTTPStatus.FOUND
    rule = MetricRule.objects.get(name="load-high")
    assert rule.labels == {"team": "web"} and rule.state == MetricRule.State.OK

    record("test.load", {-10: 9.0})
    rules_evaluate()  # writes state, last value, last evaluated: not an edit anyone made

    (event,) = events(rule)
    assert (event.action, event.actor_username) == ("admin.add", "alice")
    assert event.changes["threshold"] == [None, 4.0]
    assert MetricRule.objects.get(pk=rule.pk).state == MetricRule.State.FIRING


def test_the_list_shows_state_last_value_and_last_evaluation(superuser_client):
    record("test.load", {-10: 9.0})
    make_rule(name="load-high", series="test.load", threshold=4, for_seconds=120)
    rules_evaluate()

    page = superuser_client.get(reverse("admin:metrics_metricrule_changelist")).content.decode()

    assert "avg(test.load[1m]) &gt; 4" in page and "2m" in page
    assert "pending" in page and ">9.0<" in page
    assert "absent(system.cpu.percent) &gt; 30 s" in page  # a shipped rule


def test_evaluate_now_evaluates_the_selected_rules_and_says_what_it_found(superuser_client):
    record("test.load", {-10: 9.0})
    rule = make_rule(name="load-high", series="test.load", threshold=4)
    url = reverse("admin:metrics_metricrule_changelist")

    response = superuser_client.post(url, {"action": "evaluate_now", "_selected_action": [rule.pk]}, follow=True)

    assert [str(message) for message in response.context["messages"]] == ["load-high: firing (9)"]
    assert Alert.objects.get(source="metrics", key="load-high").state == "firing"
    assert MetricRule.objects.get(pk=rule.pk).last_evaluated_at is not None


@pytest.fixture
def firing_rule() -> MetricRule:
    record("test.load", {-10: 9.0})
    rule = make_rule(name="load-high", series="test.load", threshold=4)
    rules_evaluate()
    assert Alert.objects.get(key="load-high").state == "firing"
    return rule


def test_deleting_a_firing_rule_resolves_its_alert_at_once(superuser_client, firing_rule):
    url = reverse("admin:metrics_metricrule_delete", args=[firing_rule.pk])

    assert superuser_client.post(url, {"post": "yes"}).status_code == HTTPStatus.FOUND

    assert Alert.objects.get(key="load-high").state == "resolved"
    # Created, evaluated (not recorded), deleted.
    assert [event.action for event in events(firing_rule)] == ["model.create", "admin.delete"]


def test_disabling_a_firing_rule_resolves_its_alert_at_once(superuser_client, firing_rule):
    url = reverse("admin:metrics_metricrule_change", args=[firing_rule.pk])
    fields = {**FORM, "threshold": "4"}
    del fields["enabled"]

    assert superuser_client.post(url, fields).status_code == HTTPStatus.FOUND

    assert Alert.objects.get(key="load-high").state == "resolved"
    assert MetricRule.objects.get(pk=firing_rule.pk).state == MetricRule.State.OK


def test_renaming_a_firing_rule_moves_its_alert_to_the_new_name(superuser_client, firing_rule):
    url = reverse("admin:metrics_metricrule_change", args=[firing_rule.pk])

    assert superuser_client.post(url, {**FORM, "name": "load-very-high"}).status_code == HTTPStatus.FOUND
    rules_evaluate()

    assert Alert.objects.get(key="load-high").state == "resolved"
    assert Alert.objects.get(key="load-very-high").state == "firing"


def test_staff_without_permission_cannot_see_rules(staff_client):
    response = staff_client.get(reverse("admin:metrics_metricrule_changelist"))

    assert response.status_code == HTTPStatus.FORBIDDEN
