"""The series admin: read-only, no full counts, a link from each series to its samples."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.metrics.models import Sample, Series
from apps.metrics.series_admin import SampleAdmin, SeriesAdmin, describe_age

pytestmark = pytest.mark.django_db


def test_the_series_list_shows_unit_last_value_age_and_links_to_the_samples(superuser_client):
    now = timezone.now()
    cpu = Series.objects.create(name="system.cpu.percent", unit="%", last_at=now, last_value=12.5)
    other = Series.objects.create(name="system.memory.percent", unit="%", last_at=now, last_value=40.0)
    Sample.objects.create(series=cpu, at=now, value=12.5)
    Sample.objects.create(series=other, at=now, value=40.0)

    page = superuser_client.get(reverse("admin:metrics_series_changelist"))

    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert "system.cpu.percent" in html and "12.5" in html and "s ago" in html
    link = reverse("admin:metrics_sample_changelist") + f"?series__id__exact={cpu.pk}"
    assert link.replace("&", "&amp;") in html
    samples = superuser_client.get(link)
    assert samples.status_code == HTTPStatus.OK
    assert list(samples.context["cl"].result_list) == [Sample.objects.get(series=cpu)]


def test_nothing_can_be_added_changed_or_deleted_and_big_tables_are_not_counted(superuser_client):
    series = Series.objects.create(name="db.query.ms", unit="ms")

    assert superuser_client.get(reverse("admin:metrics_series_add")).status_code == HTTPStatus.FORBIDDEN
    delete = reverse("admin:metrics_series_delete", args=[series.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert Series.objects.filter(pk=series.pk).exists()
    assert SeriesAdmin.show_full_result_count is False and SampleAdmin.show_full_result_count is False


def test_ages_read_as_people_say_them():
    now = timezone.now()
    assert describe_age(None, now) == "never"
    assert describe_age(now - timedelta(seconds=3), now) == "3 s ago"
    assert describe_age(now - timedelta(minutes=5), now) == "5 min ago"
    assert describe_age(now - timedelta(hours=3), now) == "3 h ago"
