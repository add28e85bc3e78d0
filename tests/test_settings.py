"""Settings: YAML, environment overrides, validation."""

import pytest

from connector.settings import SettingsError, load_settings


def test_defaults_from_shipped_yaml():
    """The shipped config gives the documented defaults."""
    s = load_settings(environ={})
    assert s.listen == "0.0.0.0:8668"
    assert s.window.length == 900 and s.window.grace == 120
    assert s.store.url.startswith("sqlite:///var/")
    assert s.entity_types["SMX"].attributes["P"].kind == "power"
    assert s.server.workers == 1


def test_environment_overrides_every_leaf():
    """CONNECTOR_<PATH> overrides a setting, parsed as YAML."""
    s = load_settings(
        environ={
            "CONNECTOR_STORE_URL": "postgresql+psycopg://x@h/db",
            "CONNECTOR_WINDOW_LENGTH": "60",
            "CONNECTOR_LEDGER_URLS": "[http://a:9984, http://b:9984]",
            "CONNECTOR_LEDGER_EMBEDDED": "false",
            "CONNECTOR_KEYSTORE_PASSPHRASE": "s3cret",
            "CONNECTOR_SERVER_WORKERS": "2",
            "UNRELATED": "x",
        }
    )
    assert s.store.url == "postgresql+psycopg://x@h/db"
    assert s.window.length == 60
    assert s.ledger.urls == ["http://a:9984", "http://b:9984"]
    assert s.ledger.embedded is False
    assert s.keystore.passphrase == "s3cret"
    assert s.server.workers == 2


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"window.length": 7}, "window.length"),
        ({"window.length": "abc"}, "window.length"),
        ({"ledger.mode": "fast"}, "ledger.mode"),
        ({"server.workers": 0}, "server.workers"),
        ({"server.workers": 65}, "server.workers"),
        ({"server.workers": "many"}, "server.workers"),
        ({"server.ledger_nice": -1}, "server.ledger_nice"),
        ({"server.ledger_nice": 20}, "server.ledger_nice"),
        ({"server.closer_nice": -1}, "server.closer_nice"),
        ({"server.closer_nice": 20}, "server.closer_nice"),
        ({"nonsense": 1}, "nonsense"),
        (
            {"entity_types": {"X": {"attributes": {"E": {"direction": "up"}}}}},
            "entity_types.X.attributes.E.direction",
        ),
        (
            {"entity_types": {"X": {"attributes": {"P": {"kind": "volts"}}}}},
            "entity_types.X.attributes.P.kind",
        ),
    ],
)
def test_bad_settings_name_the_setting(overrides, names):
    """An invalid setting raises SettingsError naming it."""
    with pytest.raises(SettingsError, match=names.replace(".", r"\.")):
        load_settings(environ={}, overrides=overrides)
