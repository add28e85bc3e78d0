"""docker/: compose files valid for Debian's docker-compose, the connector wired to their services."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from connector.settings import Settings, load_settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
FILES = {"v2": DOCKER / "docker-compose.yml", "ld": DOCKER / "docker-compose.ld.yml"}
SECRETS = {"CONNECTOR_STORE_PASSWORD": "db-secret", "CONNECTOR_KEYSTORE_PASSPHRASE": "keystore-secret"}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
ORION = {"v2": "orion", "ld": "orion-ld"}
# The URL settings that must name a service of the same file, and where to find them.
URL_SETTINGS = {
    "store.url": lambda s: [s.store.url],
    "ledger.urls": lambda s: s.ledger.urls,
    "ethereum.rpc_url": lambda s: [s.ethereum.rpc_url],
    "orion.url": lambda s: [s.orion.url],
    "orion.notify_url": lambda s: [s.orion.notify_url],
}


def compose(name: str) -> dict[str, Any]:
    """A compose file as YAML, with ${VAR} interpolated from SECRETS as docker-compose would."""
    text = INTERPOLATION.sub(_interpolate, FILES[name].read_text())
    return yaml.safe_load(text)


def _interpolate(m: re.Match[str]) -> str:
    if m.group(1) in SECRETS:
        return SECRETS[m.group(1)]
    assert m.group(2) == "-", f"${{{m.group(1)}}} has no default"
    return m.group(3)


def connector_env(doc: dict[str, Any]) -> dict[str, str]:
    env = doc["services"]["connector"]["environment"]
    return {k: str(v) for k, v in env.items()}


def setting_env_names(cls: type = Settings, prefix: str = "") -> set[str]:
    """Every CONNECTOR_* name the settings know (leaf paths joined by _, upper-cased)."""
    names = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if dataclasses.is_dataclass(hints[f.name]):
            names |= setting_env_names(hints[f.name], prefix + f.name + "_")
        else:
            names.add("CONNECTOR_" + (prefix + f.name).upper())
    return names


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}
    return ports | {int(str(p)) for p in service.get("expose", [])}


@pytest.mark.parametrize("name", FILES)
def test_compose_file_passes_docker_compose_config(name):
    """`docker-compose -f FILE config` accepts the file (Debian's docker-compose, compose spec)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (make install installs Debian's docker-compose package)")
    env = {"PATH": os.environ.get("PATH", ""), **SECRETS}
    done = subprocess.run(
        ["docker-compose", "-f", str(FILES[name]), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert (
        rendered["services"]["connector"]["environment"]["CONNECTOR_KEYSTORE_PASSPHRASE"] == "keystore-secret"
    )


@pytest.mark.parametrize("name", FILES)
def test_compose_refuses_to_start_without_secrets(name):
    """Without the keystore passphrase and DB password, docker-compose stops and names the variable."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (make install installs Debian's docker-compose package)")
    done = subprocess.run(
        ["docker-compose", "-f", str(FILES[name]), "config"],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "CONNECTOR_STORE_PASSWORD" in done.stderr or "CONNECTOR_KEYSTORE_PASSPHRASE" in done.stderr


@pytest.mark.parametrize("name", FILES)
def test_connector_env_names_are_real_settings(name):
    """Every CONNECTOR_* variable in the file is a setting, and load_settings accepts the values."""
    env = connector_env(compose(name))
    unknown = sorted(set(env) - setting_env_names())
    assert unknown == []
    settings = load_settings(DOCKER / "connector.yaml", environ=env)
    assert settings.ledger.embedded is False and settings.ethereum.enabled is True
    assert settings.orion.subscribe_on_run is True
    assert settings.keystore.passphrase == "keystore-secret"
    # The password is not in the compose file's URL: store.password puts it there.
    assert "db-secret" not in env["CONNECTOR_STORE_URL"]
    assert settings.store.url == "postgresql+psycopg://connector:db-secret@postgres:5432/connector"
    assert settings.orion.ld is (name == "ld")
    assert "SMX" in settings.entity_types


@pytest.mark.parametrize("name", FILES)
def test_connector_urls_point_at_services_of_the_same_file(name):
    """Each URL setting names a service the file defines, on a port that service listens on."""
    doc = compose(name)
    services = doc["services"]
    settings = load_settings(DOCKER / "connector.yaml", environ=connector_env(doc))
    for setting, get in URL_SETTINGS.items():
        urls = get(settings)
        assert urls, setting
        for url in urls:
            parts = urlsplit(url)
            assert parts.hostname in services, f"{setting}: {url} names no service of {FILES[name].name}"
            assert parts.port in container_ports(services[parts.hostname]), f"{setting}: port of {url}"
    assert urlsplit(settings.orion.url).hostname == ("orion-ld" if name == "ld" else "orion")


@pytest.mark.parametrize("name", FILES)
def test_images_are_pinned_and_bigchaindb_is_the_reference_stack(name):
    """Every image has a version tag; BigchainDB 2.2.2 runs with Tendermint 0.31.5 and MongoDB 3.6."""
    services = compose(name)["services"]
    for svc_name, svc in services.items():
        if svc_name != "connector":
            assert re.search(r":[\w.\-]+$", svc["image"]) and not svc["image"].endswith(":latest"), svc_name
    assert services["bigchaindb"]["image"] == "bigchaindb/bigchaindb:2.2.2"
    assert services["tendermint"]["image"] == "tendermint/tendermint:v0.31.5"
    assert services["mongodb"]["image"] == "mongo:3.6"
    assert "--proxy_app=tcp://bigchaindb:26658" in services["tendermint"]["command"]
    bdb_env = services["bigchaindb"]["environment"]
    assert (
        bdb_env["BIGCHAINDB_DATABASE_HOST"] == "mongodb"
        and bdb_env["BIGCHAINDB_TENDERMINT_HOST"] == "tendermint"
    )
    assert "anvil" in services["anvil"]["entrypoint"] and "0.0.0.0" in services["anvil"]["command"]
    orion = services[ORION[name]]
    expected = {"v2": "telefonicaiot/fiware-orion:4.0.0", "ld": "quay.io/fiware/orion-ld:1.10.0"}[name]
    assert orion["image"] == expected  # FIWARE's Docker Hub organisation (fiware/...) is unmaintained


@pytest.mark.parametrize("name", FILES)
def test_every_image_tag_notes_its_source(name):
    """Each `image:` line (but the connector's own) has a comment, on it or right above it, saying where
    the tag comes from."""
    lines = FILES[name].read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("image:") and "smartmeter-connector" not in line:
            noted = "#" in line or lines[i - 1].strip().startswith("#")
            assert noted, f"{name}: no source noted for {line.strip()}"


@pytest.mark.parametrize("name", FILES)
def test_healthchecks_ask_the_database_behind_the_api(name):
    """Orion's check queries entities (its /version answers with MongoDB down); BigchainDB's also asks
    Tendermint's abci_query, as BigchainDB's own compose file does."""
    services = compose(name)["services"]
    orion_check = " ".join(services[ORION[name]]["healthcheck"]["test"])
    assert "--fail" in orion_check and "/version" not in orion_check
    assert ("/ngsi-ld/v1/entities?" if name == "ld" else "/v2/entities?limit=1") in orion_check
    bdb_check = " ".join(services["bigchaindb"]["healthcheck"]["test"])
    assert "http://127.0.0.1:9984" in bdb_check and "tendermint:26657/abci_query" in bdb_check


@pytest.mark.parametrize("name", FILES)
def test_bigchaindb_stack_restarts_always(name):
    """tendermint, bigchaindb and mongodb restart: always (they exit while the others start)."""
    services = compose(name)["services"]
    for svc in ("tendermint", "bigchaindb", "mongodb"):
        assert services[svc]["restart"] == "always", svc


@pytest.mark.parametrize("name", FILES)
def test_published_ports_are_bound_to_loopback_by_default(name):
    """Every published port is bound to 127.0.0.1 unless PUBLISH_ADDRESS says otherwise."""
    raw = yaml.safe_load(FILES[name].read_text())
    for svc_name, svc in raw["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), (svc_name, port)
    for svc in compose(name)["services"].values():
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", []))


@pytest.mark.parametrize("name", FILES)
def test_monitoring_profile_runs_prometheus_and_grafana_on_the_shipped_kit(name):
    """`--profile monitoring`: Prometheus with prometheus.yml and alerts.yml, Grafana provisioned with
    the dashboard; both only in that profile, their mounted files exist."""
    services = compose(name)["services"]
    for svc in ("prometheus", "grafana"):
        assert services[svc]["profiles"] == ["monitoring"]
        for volume in services[svc]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DOCKER / source).exists(), source
    assert "profiles" not in services["connector"]
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "alerts.yml:/etc/prometheus/alerts.yml" in mounts


def test_dockerfile_writes_a_backup_folder_the_connector_user_owns():
    """backups/ is created and owned by the connector user, and compose mounts a volume there."""
    text = (DOCKER / "Dockerfile").read_text()
    assert "/var/lib/connector/backups" in text and "chown -R connector:connector /var/lib/connector" in text
    for name in FILES:
        assert (
            "connector-backups:/var/lib/connector/backups"
            in compose(name)["services"]["connector"]["volumes"]
        )


@pytest.mark.parametrize("name", FILES)
def test_connector_waits_for_healthy_dependencies_and_keeps_state_in_volumes(name):
    """The connector starts after every dependency is healthy; store, state and keystore are volumes."""
    doc = compose(name)
    services = doc["services"]
    depends = services["connector"]["depends_on"]
    assert all(v["condition"] == "service_healthy" for v in depends.values())
    assert set(depends) >= {"postgres", "bigchaindb", "anvil"}
    for dep in depends:
        assert "healthcheck" in services[dep], dep
    mounts = dict(v.split(":")[::-1] for v in services["connector"]["volumes"])
    assert mounts["/var/lib/connector/backups"] in doc["volumes"]
    assert mounts["/var/lib/connector/keystore"] in doc["volumes"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


def test_dockerfile_is_slim_non_root_with_healthcheck():
    """The image: slim Python 3.11, non-root user, HEALTHCHECK on /health, port 8668, `run` by default."""
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/health" in text
    assert re.search(r"^EXPOSE 8668$", text, re.M)
    assert 'ENTRYPOINT ["smartmeter-connector"' in text and 'CMD ["run"]' in text
    # Same install order as the Makefile: requirements, then the --no-deps pair, then the package.
    order = [
        text.index(s) for s in ("-r requirements.txt", "--no-deps -r requirements-nodeps.txt", "--no-deps .")
    ]
    assert order == sorted(order)
    # What setup.py needs to build (the shipped config is package data) and the check that env.py came along.
    assert "COPY config ./config" in text and "pyproject.toml" in text
    assert "site-packages/connector/store/migrations/env.py" in text


DEPLOY = DOCKER.parent / "docs" / "deploy.md"


def deploy_commands() -> list[list[str]]:
    """Every shell command of docs/deploy.md's sh blocks, continuations joined, $C expanded."""
    import shlex

    blocks = re.findall(r"```sh\n(.*?)```", DEPLOY.read_text(), re.S)
    commands = []
    for block in blocks:
        text = block.replace("\\\n", " ")
        prefix = re.search(r'^C="([^"]+)"', text, re.M)
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if not line or line.startswith(("#", "C=")):
                continue
            if prefix:
                line = line.replace("$C", prefix.group(1))
            if line.startswith(("docker-compose", "smartmeter-connector")):
                commands.append(shlex.split(line.split(" > ")[0]))
    return commands


def connector_args(cmd: list[str]) -> list[str] | None:
    """The smartmeter-connector arguments a compose `run`/`exec` of the connector service gives, or None."""
    if "docker-compose" not in cmd or "connector" not in cmd:
        return None
    rest = cmd[cmd.index("connector") + 1 :]
    if "exec" in cmd:
        return rest[1:] if rest[:1] == ["smartmeter-connector"] else None
    return ["--config", "/etc/smartmeter-connector/connector.yaml", *rest]  # the image's ENTRYPOINT


def test_deploy_steps_run_real_commands_inside_the_containers():
    """docs/deploy.md: no smartmeter-connector on the host; every connector command it runs through
    compose parses with the real CLI; exec is always -T; the simulator targets the compose address."""
    from connector.cli import build_parser

    commands = deploy_commands()
    assert commands
    parser = build_parser()
    parsed = []
    for cmd in commands:
        assert cmd[0] != "smartmeter-connector", f"installed on the host? {cmd}"
        if "exec" in cmd:
            assert cmd[cmd.index("exec") + 1] == "-T", cmd
        args = connector_args(cmd)
        if args is not None:
            parsed.append(parser.parse_args(args))
    simulate = [a for a in parsed if a.command == "simulate"]
    assert simulate and simulate[0].target == "http://connector:8668/notify"
    assert any(a.command == "keys" for a in parsed)
    assert "connector_state" in DEPLOY.read_text()  # the contract address lives in the store
