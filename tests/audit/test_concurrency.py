"""8 writers x 500 events at once, on a real SQLite file and on PostgreSQL: nothing lost, one valid chain."""

import json

import pytest

from tests.audit.conftest import scratch_postgres_url
from tests.services import manage, subprocess_env

SCRIPT = (
    "import json; from tests.audit.writers import write_concurrently; print(json.dumps(write_concurrently(8, 500)))"
)


def run_writers(**env: str) -> dict:
    result = manage("migrate", "-v0", env=subprocess_env(**env), timeout=120)
    assert result.returncode == 0, result.stderr
    result = manage("shell", "-c", SCRIPT, env=subprocess_env(LOG_LEVEL="WARNING", **env), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_nothing_lost(outcome: dict) -> None:
    assert outcome["errors"] == []
    assert outcome["written"] == outcome["expected"] == 4000
    assert outcome["sealed_in_background"] and outcome["unsealed"] == 0
    assert outcome["intact"]


@pytest.mark.slow
def test_eight_writers_on_sqlite_keep_one_chain(var_dir):
    assert_nothing_lost(run_writers(OPSPORTAL_VAR_DIR=var_dir))


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_writers_on_postgresql_keep_one_chain(var_dir, production_env):
    with scratch_postgres_url(production_env["DATABASE_URL"]) as url:
        assert_nothing_lost(run_writers(OPSPORTAL_VAR_DIR=var_dir, DATABASE_URL=url, SECRET_KEY="k" * 64))
