"""Where settings meet the process environment: variable names, secrets read from files, exposure checks.

`load_settings` (connector/settings.py) calls these: a CONNECTOR_* variable that is no setting stops the
start naming the closest real one; `CONNECTOR_<SECRET>_FILE` reads a secret from a file (Docker secrets).
This module sits below connector/settings.py (it imports nothing of the connector), so `SettingsError`,
which both raise, is defined here and re-exported by connector/settings.py.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: connector.settings imports this module
    from connector.settings import Settings

ENV_PREFIX = "CONNECTOR_"
# The test suite's own variables (e.g. CONNECTOR_TEST_PG_URL), inherited by connectors it starts.
NOT_SETTINGS_PREFIX = "CONNECTOR_TEST_"
FILE_SUFFIX = "_FILE"
# Settings that hold secrets: each can also be read from a file named by CONNECTOR_<SETTING>_FILE (Docker
# and Kubernetes secrets), so the value never sits in the environment or the compose file.
SECRET_SETTINGS = (
    "keystore.passphrase",
    "store.url",
    "store.password",
    "ethereum.reporter_key",
    "api.tokens",
    "ingest.notify_secret",
    "ledger.app_key",
)


class SettingsError(ValueError):
    """The configuration is not valid; the message names the setting."""


def env_name(dotted: str) -> str:
    """The environment variable of a dotted setting: CONNECTOR_ + its path joined by _, upper-cased."""
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def env_names(paths: Iterable[str]) -> dict[str, str]:
    """Every environment variable of the settings at dotted `paths` -> its setting (secrets' _FILE too)."""
    names = {env_name(p): p for p in paths}
    names.update({env_name(p) + FILE_SUFFIX: p for p in SECRET_SETTINGS})
    return names


def check_env_names(environ: Mapping[str, str], names: Mapping[str, str]) -> None:
    """Refuse a CONNECTOR_* variable that is no setting, naming the closest real one.

    A misspelled variable (`CONNECTOR_ORION_NOTIFYURL`) would otherwise be ignored silently and the
    connector would run on a default the operator meant to change.
    """
    for key in sorted(environ):
        if key.startswith(ENV_PREFIX) and key not in names and not key.startswith(NOT_SETTINGS_PREFIX):
            raise SettingsError(_unknown_env_message(key, names))


def _unknown_env_message(key: str, names: Mapping[str, str]) -> str:
    message = f"{key}: no setting has this environment name"
    close = closest_name(key, names)
    if close:
        message += f"; did you mean {close} ({names[close]})?"
    return message + " (CONNECTOR_ + the setting's path joined by _, upper-cased)"


def closest_name(key: str, names: Mapping[str, str]) -> str | None:
    """The real variable most like `key`: by similarity, a longer common start (same section) breaking
    near-ties (CONNECTOR_KEYSTORE_PASSWORD -> CONNECTOR_KEYSTORE_PASSPHRASE, not ..._STORE_PASSWORD)."""

    def score(name: str) -> float:
        ratio = difflib.SequenceMatcher(None, key, name).ratio()
        return ratio + 0.5 * len(os.path.commonprefix([key, name])) / len(key)

    best = max(names, key=score, default=None)
    if best is None or difflib.SequenceMatcher(None, key, best).ratio() < 0.6:
        return None
    return best


def with_file_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with each CONNECTOR_<SECRET>_FILE replaced by CONNECTOR_<SECRET> = the file's text.

    The file's trailing newline is dropped (as `echo secret > file` writes one). Raises SettingsError when
    both forms are set or the file cannot be read; neither message contains the secret.
    """
    resolved = dict(environ)
    for dotted in SECRET_SETTINGS:
        name = env_name(dotted)
        path = resolved.pop(name + FILE_SUFFIX, None)
        if path is None:
            continue
        if name in resolved:
            raise SettingsError(f"{name} and {name}{FILE_SUFFIX} are both set: keep one ({dotted})")
        try:
            resolved[name] = Path(path).read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SettingsError(f"{name}{FILE_SUFFIX}: cannot read {path}: {reason} ({dotted})") from None
    return resolved


def with_store_password(settings: Settings) -> Settings:
    """Settings whose store.url carries store.password (when set)."""
    password = settings.store.password
    if not password:
        return settings
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.store.url).set(password=password)
    except ArgumentError:
        raise SettingsError("store.url: not a database URL") from None
    store = dataclasses.replace(settings.store, url=url.render_as_string(hide_password=False))
    return settings.replace(store=store)


def exposure_warning(settings: Settings) -> str | None:
    """A warning when the connector listens beyond loopback with neither api.tokens nor a notify secret:
    then anyone who reaches the port can post readings and read every tenant's data. None otherwise."""
    if settings.api.tokens or settings.ingest.notify_secret:
        return None
    host = settings.host_port[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    return (
        f"listening on {settings.listen} beyond loopback with no api.tokens and no ingest.notify_secret: "
        "anyone who reaches this port can post readings to /notify and read every tenant's data"
    )
