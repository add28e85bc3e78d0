"""docker/monitoring: every metric the Grafana dashboard and the alert rules name exists in /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from connector.service import Connector

MONITORING = Path(__file__).resolve().parents[2] / "docker" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "connector.json"
ALERTS = MONITORING / "alerts.yml"
METRIC = re.compile(r"\b(connector_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in doc["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def named_metrics() -> set[str]:
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    return {name for expr in exprs for name in METRIC.findall(expr)}


def exposed(text: str) -> set[str]:
    """Every series name /metrics can produce: sample names, and for families without samples yet (a
    labelled counter nothing incremented) the names their type gives."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names |= {family.name + s for s in SUFFIXES.get(family.type, ())}
        names |= {sample.name for sample in family.samples}
    return names


@pytest.fixture
def running(make_settings, tmp_path):
    """A connector with every part that exports metrics: embedded ledger, relay, Orion subscriptions."""
    settings = make_settings(
        **{
            "listen": "127.0.0.1:0",
            "store.url": f"sqlite:///{tmp_path}/s.sqlite3",
            "state_dir": str(tmp_path / "var"),
            "keystore.path": str(tmp_path / "var" / "keystore"),
            "ledger.embedded_port": 0,
            "ledger.embedded_ws_port": 0,
            "ledger.embedded_data": str(tmp_path / "var" / "devledger"),
            "ethereum.enabled": True,
            "ethereum.rpc_url": "http://127.0.0.1:9",  # nothing listens: the relay's metrics still exist
            "orion.subscribe_on_run": True,
        }
    )
    connector = Connector(settings).start()
    yield connector
    connector.stop()


def test_dashboard_and_alerts_name_only_metrics_the_connector_exposes(running):
    """Each connector_* name in the dashboard JSON and the alert rules is a series of /metrics."""
    manager = running.services.subscriptions
    manager.check()  # the per-subscription gauges appear once Orion was read
    text = requests.get(running.url + "/metrics", timeout=30).text
    named = named_metrics()
    assert len(named) >= 15, sorted(named)
    missing = sorted(named - exposed(text))
    assert missing == [], missing


def test_alert_rules_cover_what_operators_must_hear_about():
    """Alerts exist for rejected notifications, ack latency, ledger stuck/dead/blocked, relay, Orion."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for name in ("NotificationsRejected", "AckLatencyHigh", "LedgerStuck", "LedgerDead", "LedgerBlocked"):
        assert name in rules
    for name in ("RelayStuck", "OrionSubscriptionInactive", "OrionSubscriptionFailing"):
        assert name in rules
    for rule in rules.values():
        assert rule["expr"].strip() and rule["annotations"]["summary"] and rule["labels"]["severity"]


def test_prometheus_scrapes_the_connector_and_loads_the_rules():
    """prometheus.yml scrapes connector:8668/metrics and loads alerts.yml where compose mounts it."""
    doc = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (job,) = doc["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["connector:8668"]
    assert doc["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert job["job_name"] in ALERTS.read_text()  # the `up` alert names this job
