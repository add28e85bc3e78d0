"""Two connector processes on one PostgreSQL store and one keystore: no window anchored twice, no fork."""

from __future__ import annotations

from bench.scaleout import run_scaleout
from tests.pgschema import PG_URL, fresh_schema


def test_two_connectors_share_one_store_without_double_anchoring(tmp_path):
    """Both ingest, close and write: every acked reading stored, each window once, every history linear."""
    with fresh_schema(PG_URL) as url:
        result = run_scaleout(url, tmp_path, seconds=10, meters=6)
    assert result["acked"] > 100
    assert result["windows"] > 6
    assert result["missing"] == 0
    assert result["problems"] == []
