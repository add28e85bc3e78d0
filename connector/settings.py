"""The one settings object: built once from config/connector.yaml plus CONNECTOR_* environment overrides.

Every leaf setting has an environment name made of `CONNECTOR_` and its path joined by `_`, upper-cased:
`store.url` is `CONNECTOR_STORE_URL`, `window.length` is `CONNECTOR_WINDOW_LENGTH`. Values of text settings
are taken as given (a 0x... address stays text); the others are parsed as YAML scalars or flow collections,
so `CONNECTOR_LEDGER_URLS='[http://a, http://b]'` works. Nothing reads the environment after `load_settings`
returns.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.core.aggregate import AggregationError, unit_factor
from connector.core.kinds import ATTRIBUTE_KINDS, REGISTER_DIRECTIONS, AttributeSpec
from connector.settings_env import (
    SettingsError as SettingsError,  # defined below settings, raised by both
)
from connector.settings_env import (
    check_env_names,
    env_name,
    env_names,
    with_file_secrets,
    with_store_password,
)
from ngsi.config import OrionSettings, SubscribedType, SubscriptionSettings
from ngsi.tenants import TenantError, normalise_tenant

# The checkout's config/connector.yaml; an installed package carries the same file as
# connector/default_config/connector.yaml (setup.py).
_CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "connector.yaml"
_PACKAGED_CONFIG = Path(__file__).resolve().parent / "default_config" / "connector.yaml"
DEFAULT_CONFIG = _CHECKOUT_CONFIG if _CHECKOUT_CONFIG.exists() else _PACKAGED_CONFIG

MAX_WORKERS = 64


@dataclass(frozen=True)
class EntityTypeSettings:
    attributes: dict[str, AttributeSpec] = field(default_factory=dict)
    serial_number_attr: str = "serialNumber"
    manufacturer_attr: str = "manufacturer"
    # Attributes Orion should send for this type (the subscription's notification.attrs); empty = all.
    subscribe_attrs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoreSettings:
    url: str = "sqlite:///var/connector.sqlite3"
    pool_size: int = 10
    # When set, replaces the password in `url` (so the URL can live in plain configuration and the password
    # in a secret: CONNECTOR_STORE_PASSWORD_FILE).
    password: str = ""


@dataclass(frozen=True)
class WindowSettings:
    length: int = 900  # seconds; windows are aligned to UTC multiples of this
    grace: int = 120  # seconds after a window's end before it is closed
    close_interval: float = 5.0  # how often the scheduler looks for windows to close, seconds


@dataclass(frozen=True)
class IngestSettings:
    max_body: int = 1_048_576  # bytes; larger notifications get 413
    tenants: list[str] = field(default_factory=list)  # accepted tenants; empty = every tenant
    time_attribute: str = ""  # attribute that carries the observation time, tried first
    earliest_observation: str = "1970-01-01T00:00:00Z"  # readings observed before are rejected (ISO 8601)
    max_future: int = 0  # seconds an observation may lie after its receipt; 0 = no bound
    notify_secret: str = ""  # when set, /notify requires this value in notify_secret_header
    notify_secret_header: str = "X-Connector-Secret"


@dataclass(frozen=True)
class KeystoreSettings:
    path: str = "var/keystore"
    passphrase: str = ""  # when set, key files are encrypted at rest (Argon2id + AES-256-GCM)


@dataclass(frozen=True)
class LedgerSettings:
    enabled: bool = True
    # BigchainDB node URLs; the driver fails over between them. Empty with embedded=true: the dev ledger
    # runs inside the connector's process.
    urls: list[str] = field(default_factory=list)
    embedded: bool = True
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 9984
    embedded_ws_port: int = 9985
    embedded_data: str = "var/devledger"
    app_id: str = ""
    app_key: str = ""
    mode: str = "sync"  # async | sync | commit
    concurrency: int = 8  # meters written in parallel; strict order within a meter
    max_attempts: int = 50
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    timeout: float = 20.0
    dispatch_interval: float = 1.0
    default_manufacturer: str = "unknown"


@dataclass(frozen=True)
class EthereumSettings:
    enabled: bool = False
    rpc_url: str = ""
    embedded_anvil: bool = False  # start anvil from node_modules inside the connector (demo)
    contract_address: str = ""  # else read from the connector's state (set by `contract deploy`)
    reporter_key: str = ""  # hex private key; else the encrypted key in the keystore
    confirmations: int = 2
    gas_cap: int = 6_000_000  # per batch transaction
    max_fee_gwei: float = 200.0
    priority_fee_gwei: float = 1.0
    relay_interval: float = 2.0
    stuck_after: float = 60.0  # seconds before an unmined relay transaction is replaced with higher fees
    max_attempts: int = 50
    price_eur_per_kwh: str = "0.2"
    tolerance_wh: int = 0
    mode: str = "per_meter"  # per_meter | portfolio: which contract `contract deploy` deploys


@dataclass(frozen=True)
class TreesSettings:
    # Period hash trees (docs/trees.md): built after the closer, each root anchored on the ledger.
    enabled: bool = True
    interval: float = 10.0  # seconds between runs of the tree builder and of the root writer
    delay: int = 60  # seconds a closable period waits more before its tree is built (late windows)


@dataclass(frozen=True)
class ApiSettings:
    tokens: dict[str, str] = field(default_factory=dict)  # tenant -> bearer token; empty = no auth


@dataclass(frozen=True)
class ServerSettings:
    # HTTP worker processes sharing the listening socket; 1 = one process (see connector/supervisor.py).
    workers: int = 1
    # `run` starts one more process for the ledger work (embedded dev ledger, window closer, ledger writer,
    # Ethereum relay), so none of it runs in a process that answers /notify (issue 18).
    ledger_process: bool = True
    # With `ledger_process`, the window closer and the period-tree builder run in a process of their own
    # (the closer process) beside the ledger process: closing windows and writing the ledger then take a
    # core each instead of sharing one interpreter (issue 18: 100,000 meters' window).
    closer_process: bool = True
    # How far the ledger process lowers its own CPU priority (Linux nice, 0-19): when both want the CPU,
    # /notify is answered first and the ledger work, an outbox that catches up, takes what is left.
    ledger_nice: int = 10
    # The closer process's nice (0-19). Not lowered by default: its work is short (about 0.5 ms of CPU a
    # window) but done while holding the store's write turn, which /notify waits for; niced, it was
    # preempted in the middle of its turns by every other process (a priority inversion: 10 kept it at
    # p99 55-69 ms against 100-115 on a loaded machine, docs/benchmarks/anchoring.md).
    closer_nice: int = 0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    json: bool = True


@dataclass(frozen=True)
class Settings:
    listen: str = "0.0.0.0:8668"
    threads: int = 16
    state_dir: str = "var"
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    window: WindowSettings = field(default_factory=WindowSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    entity_types: dict[str, EntityTypeSettings] = field(default_factory=dict)
    keystore: KeystoreSettings = field(default_factory=KeystoreSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    ethereum: EthereumSettings = field(default_factory=EthereumSettings)
    orion: OrionSettings = field(default_factory=OrionSettings)
    trees: TreesSettings = field(default_factory=TreesSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "0.0.0.0", int(port)

    def attribute_spec(self, entity_type: str, attr: str) -> AttributeSpec:
        """How `attr` of `entity_type` is aggregated; unconfigured numbers get statistics only."""
        et = self.entity_types.get(entity_type)
        if et is None:
            return AttributeSpec()
        return et.attributes.get(attr, AttributeSpec())

    def replace(self, **changes: Any) -> "Settings":
        """A copy with top-level fields replaced (tests and embedded runs)."""
        return dataclasses.replace(self, **changes)


def subscription_settings(settings: Settings) -> SubscriptionSettings:
    """The slice of `settings` ngsi's subscription manager reads (ngsi imports nothing of the connector)."""
    types = {
        name: SubscribedType(list(et.subscribe_attrs), et.serial_number_attr, et.manufacturer_attr)
        for name, et in settings.entity_types.items()
    }
    ingest = settings.ingest
    return SubscriptionSettings(settings.orion, ingest.notify_secret, ingest.notify_secret_header, types)


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a YAML file, then CONNECTOR_* variables, then explicit overrides.

    `overrides` uses dotted paths (`{"store.url": "sqlite://"}`); tests use it instead of the environment.
    """
    raw: dict[str, Any] = {}
    config_path = Path(path) if path else DEFAULT_CONFIG
    if path or config_path.exists():
        try:
            raw = yaml.safe_load(config_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read {config_path}: {exc}") from exc
    environ = with_file_secrets(environ or {})
    check_env_names(environ, settings_env_names())
    for dotted, value in _env_overrides(environ).items():
        _set_path(raw, dotted, value)
    for dotted, value in (overrides or {}).items():
        _set_path(raw, dotted, value)
    return validate(with_store_password(_build(Settings, raw, "")))


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    leaves = _leaf_types(Settings, "")
    names = {env_name(p): p for p in leaves}
    found: dict[str, Any] = {}
    for key, text in environ.items():
        if key in names:
            dotted = names[key]
            # A text setting takes the variable as given: YAML would turn a 0x... address or key into an
            # integer and "0123" into 123.
            found[dotted] = text if leaves[dotted] is str else _parse_env_value(text)
    return found


def _parse_env_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def settings_env_names() -> dict[str, str]:
    """Every environment variable the settings read -> the dotted setting it sets (secrets' _FILE too)."""
    return env_names(_leaf_types(Settings, ""))


def _leaf_types(cls: type, prefix: str) -> dict[str, Any]:
    """Every leaf setting's dotted path and its declared type."""
    leaves: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            leaves.update(_leaf_types(t, prefix + f.name + "."))  # type: ignore[arg-type]
        else:
            leaves[prefix + f.name] = t
    return leaves


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{where or 'settings'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(f"{where or 'settings'}: unknown setting(s) {', '.join(unknown)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}{name}") for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by the unknown check above
        raise SettingsError(f"{where}: {exc}") from exc


def _coerce(t: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(t)
    if dataclasses.is_dataclass(t):
        return _build(t, value, where + ".")  # type: ignore[arg-type]
    if origin is dict:
        _, vt = typing.get_args(t)
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: expected a mapping")
        return {str(k): _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        (it,) = typing.get_args(t)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise SettingsError(f"{where}: expected a list")
        return [_coerce(it, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        return value
    return _scalar(t, value, where)


def _scalar(t: Any, value: Any, where: str) -> Any:
    if t is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    if t in (int, float):
        if isinstance(value, bool):
            raise SettingsError(f"{where}: expected a number, got {value!r}")
        try:
            return t(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: expected a number, got {value!r}") from None
    if t is str:
        return "" if value is None else str(value)
    return value


def validate(settings: Settings) -> Settings:
    """Check cross-field rules; raise SettingsError naming the setting."""
    _check_orion(settings)
    if settings.window.length <= 0 or 86400 % settings.window.length and settings.window.length % 86400:
        raise SettingsError("window.length: must be a positive divisor or multiple of a day in seconds")
    if settings.window.grace < 0:
        raise SettingsError("window.grace: must not be negative")
    if not 1 <= settings.server.workers <= MAX_WORKERS:
        raise SettingsError(f"server.workers: must be a whole number from 1 to {MAX_WORKERS}")
    for name in ("ledger_nice", "closer_nice"):
        if not 0 <= getattr(settings.server, name) <= 19:
            raise SettingsError(f"server.{name}: must be a whole number from 0 to 19")
    if settings.ledger.mode not in ("async", "sync", "commit"):
        raise SettingsError("ledger.mode: must be async, sync or commit")
    if settings.ethereum.mode not in ("per_meter", "portfolio"):
        raise SettingsError("ethereum.mode: must be per_meter or portfolio")
    for name, et in settings.entity_types.items():
        for attr, spec in et.attributes.items():
            if spec.kind not in ATTRIBUTE_KINDS:
                raise SettingsError(
                    f"entity_types.{name}.attributes.{attr}.kind: must be one of {', '.join(ATTRIBUTE_KINDS)}"
                )
            _check_unit(name, attr, spec)
            if spec.direction not in REGISTER_DIRECTIONS:
                raise SettingsError(
                    f"entity_types.{name}.attributes.{attr}.direction: must be net, import or export"
                )
    return check_tenants(settings)


def _check_orion(settings: Settings) -> None:
    """Refuse orion settings Orion itself would refuse."""
    o = settings.orion
    if o.attrs_format == "legacy" and not o.ld:
        raise SettingsError(
            "orion.attrs_format: legacy (NGSIv1) was removed in Orion 4.0, which answers 400 to a "
            "subscription asking for it; use normalized (the connector still accepts legacy notifications "
            "from an older Orion's existing subscriptions)"
        )


def check_tenants(settings: Settings) -> Settings:
    """`settings` with every configured tenant name (ingest.tenants, orion.tenants, api.tokens) spelled as
    the tenant rule spells it (lower-case, see ngsi.tenants); SettingsError for an invalid name, for two
    names of one tenant in api.tokens, or for an empty token (which `Authorization: Bearer` would match)."""
    tokens: dict[str, str] = {}
    for name, token in settings.api.tokens.items():
        tenant = _tenant_name("api.tokens", name)
        if not str(token or "").strip():
            raise SettingsError(f"api.tokens.{name}: the token is empty; give every tenant a secret")
        if tenant in tokens:
            raise SettingsError(f"api.tokens.{name}: tenant {tenant!r} is listed twice (names ignore case)")
        tokens[tenant] = token
    ingest = [_tenant_name("ingest.tenants", t) for t in settings.ingest.tenants]
    orion = [_tenant_name("orion.tenants", t) for t in settings.orion.tenants]
    return dataclasses.replace(
        settings,
        ingest=dataclasses.replace(settings.ingest, tenants=ingest),
        orion=dataclasses.replace(settings.orion, tenants=orion),
        api=dataclasses.replace(settings.api, tokens=tokens),
    )


def _tenant_name(where: str, name: str) -> str:
    try:
        return normalise_tenant(str(name), where)
    except TenantError as exc:
        raise SettingsError(exc.message) from None


def _check_unit(entity_type: str, attr: str, spec: AttributeSpec) -> None:
    try:
        unit_factor(spec)
    except AggregationError as exc:
        raise SettingsError(f"entity_types.{entity_type}.attributes.{attr}: {exc}") from None
