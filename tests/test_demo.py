"""The demo's flow in a shortened form: notifications -> windows -> BigchainDB -> Ethereum -> verified."""

from __future__ import annotations

import io

from demo.run import DemoOptions, run_demo


def test_demo_runs_end_to_end_and_reports(tmp_path):
    """3 meters over 2 windows: every window anchored, relayed, settled and verified; the summary says so."""
    out = io.StringIO()
    status = run_demo(
        DemoOptions(meters=3, windows=2, speedup=30, state_dir=str(tmp_path / "demo"), timeout=90, out=out)
    )
    text = out.getvalue()
    assert status == 0, text
    assert "ledger transactions confirmed: 9/9" in text  # 3 CREATE + 6 TRANSFER
    assert "windows relayed, final and settled: 6/6" in text
    assert "3/3 meters verified ok" in text
    assert "6 meter-intervals relayed, 6 settled" in text
    assert "Demo finished: everything anchored and verified" in text
