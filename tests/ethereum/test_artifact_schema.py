"""The committed contract artifact is fresh; migration 0002 creates exactly the bridge's models."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import inspect

from connector.ethereum import models
from connector.ethereum.contract import ARTIFACT, SOURCE
from connector.store.db import Store

ROOT = Path(__file__).resolve().parents[2]


def test_artifact_matches_source() -> None:
    """The artifact was compiled from the Solidity source as it is now (hash of the source)."""
    assert json.loads(ARTIFACT.read_text())["sourceSha256"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest()


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_artifact_recompiles_identically(tmp_path: Path) -> None:
    """Recompiling with the pinned solc-js gives the committed ABI and bytecode byte for byte."""
    out = tmp_path / "Settlement.json"
    subprocess.run(
        ["node", str(ROOT / "contracts" / "compile.js"), "--out", str(out)], check=True, capture_output=True
    )
    fresh, committed = json.loads(out.read_text()), json.loads(ARTIFACT.read_text())
    for field in ("abi", "bytecode", "deployedBytecode", "compiler", "settings"):
        assert fresh[field] == committed[field], field


def test_migration_matches_models(store: Store) -> None:
    """alembic upgrade head creates the bridge's tables with the models' columns, nullability and indexes."""
    inspector = inspect(store.write)
    for table in (models.EthTransaction.__table__, models.RelayOutbox.__table__, models.Plan.__table__):
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name
