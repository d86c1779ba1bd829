import pytest

from tests.services import manage, subprocess_env

BAD_SETTINGS = [
    ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("LOG_FORMAT", "xml", "one of json, console"),
    ("DATABASE_URL", "notaurl", "postgres://"),
    ("DATABASE_URL", "mysql://db/opsportal", "postgres://"),
    ("DATABASE_URL", "postgres://u:hunter2@db:port/x", "port between"),
    ("DATABASE_URL", "postgres://db-without-name", "postgres://USER"),
    ("REDIS_URL", "http://cache:6379", "redis://"),
    ("MONITORING_INTERVAL_SECONDS", "five", "a whole number"),
    ("MONITORING_INTERVAL_SECONDS", "0", ">= 1"),
    ("LOG_FILE_SIZE_MB", "1.5", "a whole number"),
    ("PROMETHEUS_ENABLED", "maybe", "true or false"),
    ("TRUSTED_PROXIES", "10.0.0.0/33", "IP addresses or networks"),
    ("LOG_API_LEVEL", "chatty", "one of DEBUG"),
    ("PORTAL_URL", "ops.example.org", "https://"),
    ("ALERTS_TICK_SECONDS", "0", ">= 1"),
]


@pytest.mark.parametrize(("name", "value", "allowed"), BAD_SETTINGS)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(name, value, allowed, var_dir):
    result = manage("check", env=subprocess_env(OPSPORTAL_VAR_DIR=var_dir, **{name: value}))

    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"opsportal: configuration error: {name}=")
    assert allowed in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_a_password_in_a_bad_database_url_is_not_echoed(var_dir):
    result = manage("check", env=subprocess_env(OPSPORTAL_VAR_DIR=var_dir, DATABASE_URL="postgres://u:hunter2@db:x/y"))

    assert result.returncode == 78
    assert "hunter2" not in result.stderr


def test_production_mode_without_a_secret_key_is_refused(var_dir):
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir, REDIS_URL="redis://127.0.0.1:6379/0")

    result = manage("check", env=env)

    assert result.returncode == 1
    assert "opsportal.E001" in result.stderr


def test_allowed_hosts_wildcard_is_refused(var_dir):
    result = manage("check", env=subprocess_env(OPSPORTAL_VAR_DIR=var_dir, ALLOWED_HOSTS="*"))

    assert result.returncode == 1
    assert "opsportal.E003" in result.stderr


def test_deploy_checks_pass_with_production_settings(var_dir):
    env = subprocess_env(
        OPSPORTAL_VAR_DIR=var_dir,
        DATABASE_URL="postgres://opsportal@127.0.0.1:5432/opsportal",
        REDIS_URL="redis://127.0.0.1:6379/0",
        SECRET_KEY="a-long-random-production-secret-key-" + "k" * 40,
        ALLOWED_HOSTS="ops.example.org",
        HTTPS="true",
    )

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stderr


def test_the_embedded_secret_key_is_generated_once_and_private(var_dir):
    from pathlib import Path

    first = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        env=subprocess_env(OPSPORTAL_VAR_DIR=var_dir),
    )
    second = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        env=subprocess_env(OPSPORTAL_VAR_DIR=var_dir),
    )

    assert first.stdout.strip().splitlines()[-1] == second.stdout.strip().splitlines()[-1]
    assert len(first.stdout.strip().splitlines()[-1]) >= 50
    assert (Path(var_dir) / "secret_key").stat().st_mode & 0o777 == 0o600


def env_example() -> dict[str, str]:
    from tests.services import ROOT

    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_every_setting_read_is_documented_in_env_example():
    import re

    from tests.services import ROOT

    read = set(re.findall(r'config\.\w+\(\s*f?"([A-Z_]+)"', (ROOT / "opsportal/settings.py").read_text()))
    read |= {f"LOG_{c}_LEVEL" for c in ("API", "DATABASE", "AUTH", "MONITORING")}
    read.discard("LOG_")  # the per-component f-string, listed above

    assert read - set(env_example()) == set()


def test_env_example_as_it_stands_is_a_valid_configuration(var_dir):
    values = {**env_example(), "OPSPORTAL_VAR_DIR": var_dir}

    result = manage("check", env=subprocess_env(**values))

    assert result.returncode == 0, result.stderr
