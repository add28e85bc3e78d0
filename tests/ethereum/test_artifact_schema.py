"""The committed contract artifacts are fresh; migration 0002 creates exactly the bridge's models."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import inspect

from connector.ethereum import contract, models, portfolio
from connector.store.db import Store

ROOT = Path(__file__).resolve().parents[2]
# Every contract compile.js builds: (name, committed artifact, Solidity source).
CONTRACTS = [
    ("Settlement", contract.ARTIFACT, contract.SOURCE),
    ("PortfolioSettlement", portfolio.ARTIFACT, portfolio.SOURCE),
]


@pytest.mark.parametrize(("name", "artifact", "source"), CONTRACTS)
def test_artifact_matches_source(name: str, artifact: Path, source: Path) -> None:
    """The artifact was compiled from the Solidity source and the files it imports as they are now (hash
    of each)."""
    committed = json.loads(artifact.read_text())
    assert committed["contractName"] == name
    assert committed["sourceSha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    hashes = committed["importSha256"]
    imported = {f: hashlib.sha256((source.parent / f).read_bytes()).hexdigest() for f in hashes}
    assert set(hashes) == {"SettlementBase.sol"}
    assert imported == hashes


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
@pytest.mark.parametrize(("name", "artifact", "source"), CONTRACTS)
def test_artifact_recompiles_identically(tmp_path: Path, name: str, artifact: Path, source: Path) -> None:
    """Recompiling with the pinned solc-js gives the committed ABI and bytecode byte for byte."""
    out = tmp_path / f"{name}.json"
    compile_js = str(ROOT / "contracts" / "compile.js")
    args = ["node", compile_js, "--contract", name, "--out", str(out)]
    subprocess.run(args, check=True, capture_output=True)
    fresh, committed = json.loads(out.read_text()), json.loads(artifact.read_text())
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
