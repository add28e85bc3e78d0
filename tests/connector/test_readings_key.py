"""The readings' one index (migration 0004) and the window length the store is pinned to."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import event, inspect, select

from connector.closer import window_readings
from connector.ingest import IngestConfig, write_batch
from connector.service import pin_window_length
from connector.settings import SettingsError
from connector.store.db import alembic_config, migrate, open_store
from connector.store.models import Meter, Reading, Window
from tests.connector import payloads as p
from tests.connector.test_ingest_writer import incoming


def readings_keys(store) -> tuple[set[tuple[str, ...]], list[str]]:
    """The readings table's unique keys (columns) and its other indexes (names), as the database has them."""
    with store.reading() as conn:
        insp = inspect(conn)
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("readings")}
        uniques |= {tuple(i["column_names"]) for i in insp.get_indexes("readings") if i["unique"]}
        others = [i["name"] for i in insp.get_indexes("readings") if not i["unique"]]
    return uniques, others


def test_migration_0004_rekeys_readings_and_keeps_them(store_url):
    """A store at 0003 holding a reading: upgraded, the reading is kept, one unique key (meter, window
    start, observation time, attribute) and no second index; downgraded, the old key and index are back."""
    store = open_store(store_url)
    try:
        migrate(store, "0003")
        assert readings_keys(store) == ({("meter_id", "attr", "observed_at")}, ["ix_readings_meter_window"])
        with store.begin() as conn:
            at = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
            conn.execute(
                Meter.__table__.insert().values(
                    tenant="t", service_path="/", entity_id="e", entity_type="T", first_seen=at,
                    chain_seed="s", chain_head="s", late_since_close=0,
                )
            )  # fmt: skip
            meter = conn.execute(select(Meter.id)).scalar_one()
            conn.execute(
                Reading.__table__.insert().values(
                    meter_id=meter, attr="P", observed_at=at, received_at=at, time_source="metadata",
                    value_json="1", window_start=datetime(2026, 1, 1, tzinfo=UTC), late=False,
                )
            )  # fmt: skip
        migrate(store)
        assert readings_keys(store) == ({("meter_id", "window_start", "observed_at", "attr")}, [])
        with store.reading() as conn:
            assert conn.execute(select(Reading.attr, Reading.value_json)).all() == [("P", "1")]
        cfg = alembic_config(store.url)
        with store.write.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
            conn.commit()
        assert readings_keys(store) == ({("meter_id", "attr", "observed_at")}, ["ix_readings_meter_window"])
    finally:
        store.dispose()


def test_same_reading_twice_is_one_row_under_the_new_key(store, settings, clock):
    """The duplicate check still holds: the same (meter, attribute, observation time) is stored once."""
    body = p.normalized("urn:ngsi-ld:SMX:K", "2026-01-01T00:00:01Z", 1)
    with store.begin() as conn:
        first = write_batch(conn, [incoming(body, clock)], IngestConfig.of(settings))[0]
    with store.begin() as conn:
        again = write_batch(conn, [incoming(body, clock)], IngestConfig.of(settings))[0]
    assert (first.accepted, again.accepted, again.duplicates) == (1, 0, 1)


def test_closer_reads_a_window_from_the_key_in_order(store, settings, clock):
    """SQLite's plan for a window's readings searches the unique key by (meter, window start) and needs
    no sort: the key is in the closer's order (observation time, attribute)."""
    if store.dialect != "sqlite":
        pytest.skip("query plans are SQLite's")
    with store.begin() as conn:
        write_batch(
            conn,
            [incoming(p.normalized("urn:ngsi-ld:SMX:W", "2026-01-01T00:00:01Z", 1), clock)],
            IngestConfig.of(settings),
        )
    seen: list[tuple[str, tuple]] = []

    def record(_conn, _cursor, statement, params, _context, _many):
        seen.append((statement, params))

    event.listen(store.read, "before_cursor_execute", record)
    try:
        with store.reading() as conn:
            rows = window_readings(conn, [(1, datetime(2026, 1, 1, tzinfo=UTC))])
            statement, params = seen[-1]
            plan = " | ".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
    finally:
        event.remove(store.read, "before_cursor_execute", record)
    assert [len(found) for found in rows.values()] == [1]
    assert (
        "SEARCH readings USING INDEX sqlite_autoindex_readings_1 (meter_id=? AND window_start=?)" in plan
    ), plan
    assert "TEMP B-TREE" not in plan, plan


def test_store_is_pinned_to_its_first_window_length(store):
    """The first start records the window length; the same length starts again; another one is refused
    with a message naming both."""
    pin_window_length(store, 900)
    pin_window_length(store, 900)
    with pytest.raises(SettingsError, match=r"window.length: 1800 s, but .* built with 900 s"):
        pin_window_length(store, 1800)


def test_store_from_before_the_pin_keeps_its_windows_length(store, settings, clock):
    """A store with closed windows of 900 s and no recorded length (upgraded from before the check) is
    pinned to 900 s, not to the length it is started with next."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with store.begin() as conn:
        write_batch(
            conn,
            [incoming(p.normalized("urn:ngsi-ld:SMX:U", "2026-01-01T00:00:01Z", 1), clock)],
            IngestConfig.of(settings),
        )
        conn.execute(
            Window.__table__.insert().values(
                meter_id=conn.execute(select(Meter.id)).scalar_one(), start=start,
                end=start + timedelta(seconds=900), closed_at=start, reading_count=1, duplicate_count=0,
                late_count=0, summary_json="{}", fingerprint="f", prev_chain_hash="p", chain_hash="c",
            )
        )  # fmt: skip
    with pytest.raises(SettingsError, match=r"window.length: 60 s, but .* built with 900 s"):
        pin_window_length(store, 60)
    pin_window_length(store, 900)


def test_run_with_another_window_length_exits_2(store_url, tmp_path):
    """`smartmeter-connector run` on a store pinned to 900 s with window.length 1800: exit 2, the reason on
    stderr, before it serves anything."""
    store = open_store(store_url)
    migrate(store)
    pin_window_length(store, 900)
    store.dispose()
    env = {
        **os.environ,
        "CONNECTOR_STORE_URL": store_url,
        "CONNECTOR_WINDOW_LENGTH": "1800",
        "CONNECTOR_STATE_DIR": str(tmp_path / "var"),
        "CONNECTOR_LEDGER_ENABLED": "false",
        "CONNECTOR_LISTEN": "127.0.0.1:0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "connector", "run"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "window.length: 1800 s, but this store's readings and windows were built with 900 s" in done.stderr
    assert "listening" not in done.stdout
