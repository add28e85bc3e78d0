"""Property (issue 15): whatever sequence of notifications a sender posts, every acknowledged reading is
stored once (the first value of its key; later different values kept as conflicts), every closed window
gets exactly one TRANSFER, no ledger row ends dead, and each meter's chain verifies on the dev ledger."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connector.closer import close_due_windows
from connector.ingest import canonical_value
from connector.keystore import Keystore
from connector.store.models import LedgerOutbox, Meter, Reading, ReadingConflict, Window
from tests.api.test_chain_invariants import anchor
from tests.connector import payloads as p

T0 = datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
# Times over three windows, plus ones the connector must refuse (before 1970) without harm.
TIMES = [T0 + timedelta(minutes=m) for m in (0, 1, 7, 14, 15, 16, 29, 31, 44)]
BAD_TIMES = [datetime(1969, 12, 31, 23, 59, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC)]
VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.sampled_from([1.5, -84.891, 0.0, -0.0, 1e300]),
    st.sampled_from(["on", "5", "", "ü"]),
    st.sampled_from([float("nan"), float("inf")]),  # refused per reading
)
READING = st.tuples(
    st.sampled_from(["m0", "m1", "m2"]),
    st.sampled_from(["P", "E", "x.y", "language", "$where"]),  # names that are illegal metadata keys, too
    st.sampled_from(TIMES + BAD_TIMES),
    VALUES,
)
NOTIFICATIONS = st.lists(st.lists(READING, min_size=1, max_size=6), min_size=1, max_size=6)
_TENANTS = itertools.count()


def body(readings: list[tuple[str, str, datetime, Any]]) -> str:
    """One normalized notification: one entity per reading (an entity may repeat, as in a batch)."""
    data = []
    for entity, attr, when, value in readings:
        meta = {"TimeInstant": {"type": "DateTime", "value": when.isoformat().replace("+00:00", "Z")}}
        kind = "Text" if isinstance(value, str) else "Number"
        data.append({"id": entity, "type": "SMX", attr: {"type": kind, "value": value, "metadata": meta}})
    return json.dumps(
        {"subscriptionId": "s", "data": data}
    )  # NaN and Infinity as JSON's non-standard literals


def expected_first(sequence: list[list[tuple[str, str, datetime, Any]]]) -> tuple[dict, int]:
    """The first acceptable value of every key, and how many later different values (conflicts) came."""
    first: dict[tuple[str, str, datetime], str] = {}
    conflicts = 0
    for readings in sequence:
        for entity, attr, when, value in readings:
            if when.year < 1970 or (isinstance(value, float) and not math.isfinite(value)):
                continue
            key, text = (entity, attr, when), canonical_value(value)
            if key not in first:
                first[key] = text
            elif first[key] != text:
                conflicts += 1
    return first, conflicts


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=NOTIFICATIONS)
def test_any_notification_sequence_keeps_every_chain_whole(
    client, store, api_settings, ledger, tmp_path, sequence
):
    """Acknowledged readings stored once, one TRANSFER per closed window, none dead, every meter verifies."""
    tenant = f"prop{next(_TENANTS)}"
    headers = {**p.ORION_HEADERS, "Fiware-Service": tenant, "Ngsiv2-AttrsFormat": "normalized"}
    conflicts_answered = 0
    for readings in sequence:
        resp = client.post("/notify", data=body(readings), headers=headers)
        assert resp.status_code == 200, resp.get_json()
        conflicts_answered += len(resp.get_json()["conflicts"])
    first, conflicts = expected_first(sequence)
    assert conflicts_answered == conflicts
    with store.reading() as conn:
        rows = conn.execute(
            select(Meter.entity_id, Reading.attr, Reading.observed_at, Reading.value_json)
            .join(Meter)
            .where(Meter.tenant == tenant)
        ).all()
    assert len(rows) == len(first)
    assert {(e, a, t): v for e, a, t, v in rows} == first
    close_due_windows(store, api_settings, T0 + timedelta(hours=2))
    anchor(store, api_settings, Keystore(tmp_path / "keys"), ledger.url, tenant)  # asserts all confirmed
    with store.reading() as conn:
        meters = conn.execute(select(Meter.id, Meter.entity_id).where(Meter.tenant == tenant)).all()
        for meter_id, _entity in meters:
            windows = conn.execute(select(func.count()).where(Window.meter_id == meter_id)).scalar_one()
            transfers = conn.execute(
                select(LedgerOutbox.status).where(
                    LedgerOutbox.meter_id == meter_id, LedgerOutbox.operation == "TRANSFER"
                )
            ).all()
            assert len(transfers) == windows and all(s == "confirmed" for (s,) in transfers)
        stored_conflicts = conn.execute(
            select(func.count()).select_from(ReadingConflict).join(Meter).where(Meter.tenant == tenant)
        ).scalar_one()
    assert stored_conflicts <= conflicts
    for _meter_id, entity in meters:
        answer = json.loads(
            client.get(f"/v1/meters/{entity}/verify", headers={"Fiware-Service": tenant}).data
        )
        assert answer["verdict"] == "ok", answer
