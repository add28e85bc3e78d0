"""Settings from the environment: misspelled names, secrets from files, Orion 4's formats, exposure."""

from __future__ import annotations

import os

import pytest
from structlog.testing import capture_logs

from connector.settings import SettingsError, load_settings, settings_env_names
from connector.settings_env import SECRET_SETTINGS, exposure_warning


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("CONNECTOR_ORION_NOTIFYURL", "CONNECTOR_ORION_NOTIFY_URL (orion.notify_url)"),
        ("CONNECTOR_STORE_ULR", "CONNECTOR_STORE_URL (store.url)"),
        ("CONNECTOR_KEYSTORE_PASSWORD", "CONNECTOR_KEYSTORE_PASSPHRASE (keystore.passphrase)"),
        ("CONNECTOR_LEDGER_URL", "CONNECTOR_LEDGER_URLS (ledger.urls)"),
    ],
)
def test_a_misspelled_variable_stops_the_start_naming_the_closest_setting(name, suggestion):
    """An unknown CONNECTOR_* variable is refused with its name and the closest real setting."""
    with pytest.raises(SettingsError) as err:
        load_settings(environ={name: "x"})
    assert str(err.value).startswith(f"{name}: no setting has this environment name")
    assert f"did you mean {suggestion}?" in str(err.value)


def test_a_variable_like_no_setting_is_refused_without_a_guess():
    """Nothing close: the message names the variable and how names are made, no suggestion."""
    with pytest.raises(SettingsError, match="CONNECTOR_ZZZZZZZZZZZZZZZZ: no setting") as err:
        load_settings(environ={"CONNECTOR_ZZZZZZZZZZZZZZZZ": "1"})
    assert "did you mean" not in str(err.value)


def test_other_variables_are_not_the_settings_business():
    """Variables without the CONNECTOR_ prefix are ignored, as before."""
    assert load_settings(environ={"CONNECTORX": "1", "PATH": "/bin"}).listen == "0.0.0.0:8668"


@pytest.mark.parametrize("dotted", SECRET_SETTINGS)
def test_every_secret_can_be_read_from_a_file(tmp_path, dotted):
    """CONNECTOR_<SECRET>_FILE names a file whose text (trailing newline dropped) is the setting."""
    name = "CONNECTOR_" + dotted.replace(".", "_").upper()
    value = {"store.url": "postgresql+psycopg://u:p@db/x", "api.tokens": "{tk: t0ken}"}.get(dotted, "s3cr3t")
    secret = tmp_path / "secret"
    secret.write_text(value + "\n")
    settings = load_settings(environ={name + "_FILE": str(secret)})
    section, field = dotted.split(".")
    got = getattr(getattr(settings, section), field)
    if dotted == "api.tokens":
        assert got == {"tk": "t0ken"}
    elif dotted == "store.password":
        assert settings.store.url == "sqlite:///var/connector.sqlite3"  # SQLite has no password to set
    else:
        assert got == value


def test_store_password_from_a_file_goes_into_the_database_url(tmp_path):
    """store.password (e.g. from CONNECTOR_STORE_PASSWORD_FILE) replaces the URL's password, quoted."""
    secret = tmp_path / "pw"
    secret.write_text("p@ss/word\n")
    s = load_settings(
        environ={
            "CONNECTOR_STORE_URL": "postgresql+psycopg://connector@postgres:5432/connector",
            "CONNECTOR_STORE_PASSWORD_FILE": str(secret),
        }
    )
    assert s.store.url == "postgresql+psycopg://connector:p%40ss%2Fword@postgres:5432/connector"


def test_a_secret_set_twice_or_unreadable_is_refused_without_showing_it(tmp_path):
    """Both CONNECTOR_X and CONNECTOR_X_FILE, or a missing file: refused, naming the variable only."""
    secret = tmp_path / "k"
    secret.write_text("do-not-print")
    both = {"CONNECTOR_KEYSTORE_PASSPHRASE": "inline", "CONNECTOR_KEYSTORE_PASSPHRASE_FILE": str(secret)}
    with pytest.raises(SettingsError, match="are both set") as err:
        load_settings(environ=both)
    assert "do-not-print" not in str(err.value) and "inline" not in str(err.value)
    missing = str(tmp_path / "absent")
    with pytest.raises(SettingsError, match=r"CONNECTOR_KEYSTORE_PASSPHRASE_FILE: cannot read .*absent"):
        load_settings(environ={"CONNECTOR_KEYSTORE_PASSPHRASE_FILE": missing})


def test_file_form_exists_only_for_secrets():
    """CONNECTOR_WINDOW_LENGTH_FILE is no setting: refused like any misspelling."""
    assert "CONNECTOR_API_TOKENS_FILE" in settings_env_names()
    with pytest.raises(SettingsError, match="CONNECTOR_WINDOW_LENGTH_FILE: no setting"):
        load_settings(environ={"CONNECTOR_WINDOW_LENGTH_FILE": os.devnull})


def test_legacy_attrs_format_is_refused_for_orion_4():
    """attrsFormat legacy was removed in Orion 4: refused at start with the reason."""
    with pytest.raises(SettingsError, match="orion.attrs_format: legacy .* removed in Orion 4.0"):
        load_settings(environ={"CONNECTOR_ORION_ATTRS_FORMAT": "legacy"})


@pytest.mark.parametrize(
    "env, warned",
    [
        ({}, True),
        ({"CONNECTOR_LISTEN": "127.0.0.1:8668"}, False),
        ({"CONNECTOR_LISTEN": "[::1]:8668"}, False),
        ({"CONNECTOR_LISTEN": "localhost:8668"}, False),
        ({"CONNECTOR_LISTEN": "10.0.0.5:8668"}, True),
        ({"CONNECTOR_INGEST_NOTIFY_SECRET": "s"}, False),
        ({"CONNECTOR_API_TOKENS": "{tk: t}"}, False),
    ],
)
def test_exposure_warning_beyond_loopback_without_tokens_or_secret(env, warned):
    """Listening beyond loopback with no api.tokens and no notify secret gives a warning."""
    assert (exposure_warning(load_settings(environ=env)) is not None) is warned


def test_the_connector_logs_the_exposure_warning_at_start(tmp_path):
    """Connector.start() logs `security.exposed` when it listens on all interfaces unprotected."""
    from connector.service import Connector

    settings = load_settings(
        overrides={
            "ledger.enabled": False,
            "store.url": f"sqlite:///{tmp_path}/s.sqlite3",
            "listen": "0.0.0.0:0",
        }
    )
    with capture_logs() as logs:
        connector = Connector(settings).start(serve_http=False)
        connector.stop()
    assert [e["log_level"] for e in logs if e["event"] == "security.exposed"] == ["warning"]


def test_the_command_line_stops_on_a_misspelled_variable(monkeypatch, capsys, tmp_path):
    """`smartmeter-connector run` with CONNECTOR_ORION_NOTIFYURL set exits 2 naming it and the fix,
    before anything starts."""
    from connector.cli import main

    monkeypatch.setenv("CONNECTOR_ORION_NOTIFYURL", "http://connector:8668/notify")
    monkeypatch.setenv("CONNECTOR_STORE_URL", f"sqlite:///{tmp_path}/never.sqlite3")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "bad configuration: CONNECTOR_ORION_NOTIFYURL" in err and "CONNECTOR_ORION_NOTIFY_URL" in err
    assert not (tmp_path / "never.sqlite3").exists()
