"""Configuration: precedence of the sources and one clear line per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_oltpseed.config import load_settings
from pytest_oltpseed.errors import ConfigError, GuardrailRefused, UsageError
from tests.conftest import run_cli


def _config(tmp_path: Path, dotenv: str = "", toml: str = "") -> Path:
    directory = tmp_path / "config"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".env").write_text(dotenv)
    (directory / "settings.toml").write_text(toml)
    return directory


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load_settings(config_dir=_config(tmp_path), env={})
    assert settings.connection.embedded
    assert settings.seed_size == "MEDIUM"
    assert settings.seed_random == 0
    assert settings.stream.batch_size == 50
    assert settings.stream.interval_seconds == 2.0
    assert settings.stream.max_jitter_ms == 400
    assert settings.connect_timeout == 10
    assert settings.application_name == "oltp-simulator"
    assert settings.logging.level == "INFO"
    assert not settings.production_like


def test_precedence_flag_env_dotenv_toml(tmp_path: Path) -> None:
    directory = _config(
        tmp_path,
        dotenv="BATCH_SIZE=20\nSEED_SIZE=LARGE\nLOG_LEVEL=DEBUG\n",
        toml='[stream]\nbatch_size = 10\nmax_jitter_ms = 7\n[seed]\nsize = "SMALL"\n'
        '[logging]\nlevel = "ERROR"\n',
    )
    env = {"BATCH_SIZE": "30"}
    settings = load_settings(config_dir=directory, env=env, seed_size="STRESS")
    assert settings.stream.batch_size == 30  # environment beats .env and toml
    assert settings.seed_size == "STRESS"  # flag beats .env and toml
    assert settings.logging.level == "DEBUG"  # .env beats toml
    assert settings.stream.max_jitter_ms == 7  # toml beats the default


def test_connection_precedence(tmp_path: Path) -> None:
    directory = _config(
        tmp_path,
        dotenv="DATABASE_URL=postgresql://dotenv@h1/db1\n",
        toml='[db]\nhost = "tomlhost"\n',
    )
    flag = load_settings(dsn="postgresql://flag@h/db", config_dir=directory, env={})
    assert flag.connection.conninfo == "postgresql://flag@h/db"
    env_pg = load_settings(config_dir=directory, env={"PG_HOST": "envhost"})
    assert "host=envhost" in (env_pg.connection.conninfo or "")
    assert "environment" in env_pg.connection.source
    dotenv = load_settings(config_dir=directory, env={})
    assert dotenv.connection.conninfo == "postgresql://dotenv@h1/db1"
    toml_only = load_settings(
        config_dir=_config(tmp_path / "x", toml="[db]\nport = 6000\n"), env={}
    )
    assert "port=6000" in (toml_only.connection.conninfo or "")


def test_pg_parts_merge_across_levels(tmp_path: Path) -> None:
    directory = _config(tmp_path, dotenv="PG_PORT=6543\nPG_PASSWORD=secret\n")
    settings = load_settings(config_dir=directory, env={"PG_HOST": "db.example"})
    info = settings.connection.conninfo or ""
    assert "host=db.example" in info and "port=6543" in info
    assert "password=secret" in info


@pytest.mark.parametrize(
    ("env", "name", "allowed"),
    [
        ({"SEED_SIZE": "HUGE"}, "SEED_SIZE", "SMALL, MEDIUM, LARGE, STRESS, CUSTOM"),
        ({"PG_PORT": "abc"}, "PG_PORT", "an integer >= 1 and <= 65535"),
        ({"PG_PORT": "70000"}, "PG_PORT", "an integer >= 1 and <= 65535"),
        ({"BATCH_SIZE": "-5"}, "BATCH_SIZE", "an integer >= 1"),
        ({"MAX_JITTER_MS": "lots"}, "MAX_JITTER_MS", "an integer >= 0"),
        ({"STREAM_INTERVAL_SECONDS": "-1"}, "STREAM_INTERVAL_SECONDS", "a number >= 0"),
        ({"SEED_RANDOM": "x"}, "SEED_RANDOM", "an integer >= 0"),
        ({"APP_ENV": "QA"}, "APP_ENV", "DEV, TEST, STAGING, RENDER, PROD"),
        ({"FORCE_SEED": "maybe"}, "FORCE_SEED", "true or false"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", "DEBUG, INFO"),
        (
            {"DATABASE_URL": "postgresql://u:pw@h:notaport/db"},
            "DATABASE_URL",
            "postgresql:// URL",
        ),
        ({"DATABASE_URL": "mysql://u:pw@h/db"}, "DATABASE_URL", "postgresql:// URL"),
    ],
)
def test_bad_value_names_variable_and_allowed(
    tmp_path: Path, env: dict[str, str], name: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_dir=_config(tmp_path), env=env)
    message = str(caught.value)
    assert message.startswith(f"invalid {name}=")
    assert allowed in message
    assert "pw" not in message.split("expected")[0].replace("postgresql", "")
    assert caught.value.exit_code == 2


def test_bad_value_in_toml_names_section_and_file(tmp_path: Path) -> None:
    directory = _config(tmp_path, toml='[stream]\nbatch_size = "many"\n')
    with pytest.raises(
        ConfigError,
        match=r"invalid \[stream\] batch_size='many' "
        r"\(from .*settings.toml\)",
    ):
        load_settings(config_dir=directory, env={})


def test_broken_toml_is_one_line(tmp_path: Path) -> None:
    directory = _config(tmp_path, toml="[stream\nbatch_size = 1\n")
    with pytest.raises(UsageError, match=r"cannot parse .*settings\.toml"):
        load_settings(config_dir=directory, env={})


def test_guardrail_sources(tmp_path: Path) -> None:
    directory = _config(tmp_path)
    for env in ({"APP_ENV": "prod"}, {"APP_ENV": "STAGING"}, {"RENDER": "true"}):
        settings = load_settings(config_dir=directory, env=env)
        assert settings.production_like
        with pytest.raises(GuardrailRefused) as caught:
            settings.guard_write("seed")
        assert caught.value.exit_code == 3
        assert "FORCE_SEED=true" in str(caught.value)
        load_settings(config_dir=directory, env=env, force=True).guard_write("seed")
        forced = load_settings(config_dir=directory, env={**env, "FORCE_SEED": "true"})
        forced.guard_write("seed")
    # A committed settings.toml cannot disarm the guardrail.
    toml_dir = _config(tmp_path / "t", toml="[db]\nforce_seed = true\n")
    guarded = load_settings(config_dir=toml_dir, env={"APP_ENV": "PROD"})
    with pytest.raises(GuardrailRefused):
        guarded.guard_write("seed")


@pytest.mark.parametrize(
    ("setting", "args", "expected"),
    [
        ({"SEED_SIZE": "HUGE"}, ["init-db"], "invalid SEED_SIZE='HUGE'"),
        ({"PG_PORT": "abc"}, ["counts"], "invalid PG_PORT='abc'"),
        ({"BATCH_SIZE": "-3"}, ["init-db"], "invalid BATCH_SIZE='-3'"),
        ({}, ["init-db", "--domain", "pharmacy"], "unknown --domain 'pharmacy'"),
        ({}, ["counts", "--domain", "x"], "hospital, retail, all"),
    ],
)
def test_cli_bad_configuration_exit_2(
    cli_env: dict[str, str], setting: dict[str, str], args: list[str], expected: str
) -> None:
    result = run_cli(*args, env={**cli_env, **setting})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_unreadable_settings_exit_2(cli_env: dict[str, str]) -> None:
    settings = Path(cli_env["OLTPSEED_CONFIG_DIR"]) / "settings.toml"
    settings.mkdir()  # a directory where a file should be: unreadable
    result = run_cli("counts", env=cli_env)
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "settings.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_unknown_option_is_usage_error(cli_env: dict[str, str]) -> None:
    result = run_cli("init-db", "--colour", "red", env=cli_env)
    assert result.returncode == 2
    assert "no such option" in result.stderr.lower()
