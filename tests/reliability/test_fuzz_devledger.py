"""Fuzz the dev ledger's POST /api/v1/transactions: no 5xx, no crash, valid transactions still committed."""

from __future__ import annotations

from bench.fuzz_devledger import LedgerFuzzer, check_blocks, run
from tests.reliability.harness import LedgerProcess

CASES = 300


def test_generated_transactions_never_5xx_and_valid_ones_commit(ledger: LedgerProcess):
    """Hundreds of generated bodies against the ledger process: every answer below 500, the process up,
    each valid TRANSFER posted in between committed at once and read back, the asset's chain linear, and
    the block hash chain intact (`devledger --check`)."""
    fuzzer = LedgerFuzzer(ledger.url)
    result = run(fuzzer, CASES, valid_every=10)
    assert result["cases"] >= CASES
    assert fuzzer.server_errors == [] and fuzzer.broken == []
    assert result["still_answers"] and ledger.proc is not None and ledger.proc.poll() is None
    assert result["statuses"].get("202", 0) > 0 and result["statuses"].get("400", 0) > 0
    assert result["valid_sent"] >= CASES // 10 and fuzzer.valid_refused == []
    assert result["valid_missing"] == 0 and result["chain_problems"] == []
    ledger.stop()
    assert check_blocks(ledger.data_dir) == 0
