import contextlib
import os
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from django.test import Client

from tests import services
from tests.receiver import Receiver

POSTGRES_URL = (
    os.environ.get("DATABASE_URL", "")
    if urlsplit(os.environ.get("DATABASE_URL", "")).scheme.startswith(("postgres", "pgsql"))
    else ""
)
REDIS_URL = os.environ.get("REDIS_URL", "")


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI a configured service that does not answer fails the run instead of skipping tests."""
    if os.environ.get("CI") != "true" or hasattr(session.config, "workerinput"):
        return
    problems = services.unreachable(POSTGRES_URL, REDIS_URL)
    if problems:
        pytest.exit("CI=true but " + "; ".join(problems), returncode=3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    by_group = getattr(config.option, "loadgroup", False)  # --dist loadgroup (pyproject.toml)
    for item in items:
        # schemathesis names its items "test[GET /path]" (tests/hooks/test_schema.py), but under pytest 9 their node
        # ids lack that suffix: every operation shared one id, and pytest-xdist, which schedules by id, ran two of
        # ~50 and reported nothing of the rest. Each gets its own id back.
        label = getattr(item, "operation_label", None)
        if label and item.id.params is None:
            item._id = item.id.with_params(label)
        # pytest-xdist 3.8 sends the tests of an xdist_group to one process by adding "@group" to their ids, in an
        # attribute pytest 9 no longer reads (`_nodeid`): the tests of one group ran on both processes at once.
        groups = sorted(str(mark.args[0]) for mark in item.iter_markers("xdist_group")) if by_group else []
        if groups:
            item._id = type(item.id).parse(f"{item.nodeid}@{'_'.join(groups)}")
        if item.get_closest_marker("postgres") and not POSTGRES_URL:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://..."))
        if item.get_closest_marker("redis") and not REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://..."))


@pytest.fixture(autouse=True, scope="session")
def in_process_settings():
    """What the tests' own process does differently from a server, for the whole run:

    - the audit chain is sealed in the committing thread, so a test's events are sealed when its request
      returns (tests/audit/test_sealer.py runs the background sealer itself; servers started by tests run it);
    - no metrics reporter thread starts (tests/metrics run reporters themselves);
    - pages of the alerts list are not reused: most tests write in a transaction that never commits, so the
      epoch that ends the reuse never moves (tests/hooks/test_api_reuse.py commits, and turns it on).
    """
    from django.test import override_settings

    with override_settings(
        AUDIT_SEAL_IN_BACKGROUND=False, METRICS_REPORT_IN_BACKGROUND=False, API_LIST_CACHE_SECONDS=0
    ):
        yield


@pytest.fixture(autouse=True)
def first_warnings() -> None:
    """Each test logs its own first warning of an outage, whatever an earlier test in its process logged."""
    from apps.core.repeats import Repeated

    for repeated in Repeated.made:
        repeated.reset()


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("alice", "alice@example.org", "alice-password-1")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.org", "bob-password-12", is_staff=True)


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("charlie", "charlie@example.org", "charlie-password-1")


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


@pytest.fixture
def superuser_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def fast_passwords(settings) -> None:
    """The persona fixtures hash a password each; the default hasher spends half a second on it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def production_env() -> dict:
    """Environment for a subprocess in production mode against this machine's services."""
    return {"DATABASE_URL": POSTGRES_URL, "REDIS_URL": REDIS_URL, "SECRET_KEY": "x" * 60}


@pytest.fixture
def var_dir(tmp_path) -> str:
    path = tmp_path / "var"
    path.mkdir()
    return str(path)


@pytest.fixture
def start_receiver() -> Iterator[Callable[..., Receiver]]:
    """Start as many loopback HTTP receivers as a test needs (options as tests.receiver.Receiver's); all are
    stopped after it."""
    with contextlib.ExitStack() as started:
        yield lambda **options: started.enter_context(Receiver(**options))


@pytest.fixture
def receiver(start_receiver) -> Receiver:
    """An HTTP receiver on 127.0.0.1 that records every request and answers 200 "ok" unless told otherwise."""
    return start_receiver()


@pytest.fixture
def log_lines():
    """Every log line written while the test runs, rendered as JSON by the portal's own formatter."""
    import io
    import json
    import logging

    from apps.core.logging import formatter

    spec = formatter("json", 8192)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(spec.pop("()")(**spec))
    root = logging.getLogger()
    root.addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)


@pytest.fixture(scope="session")
def celery_worker():
    """The embedded worker, in this process, on an in-memory broker (one per test process)."""
    from celery.result import _set_task_join_will_block

    from apps.core.worker import EmbeddedWorker
    from opsportal.celery import app

    with services.broker_in_memory():
        worker = EmbeddedWorker(app, concurrency=2, beat=False)
        worker.start()
        _set_task_join_will_block(False)  # the tests wait for results; tasks themselves never should
        yield worker
        worker.stop()
