"""The pure core: plain data in, plain data out, nothing but the standard library and two hashes.

Readings (`readings`), what an attribute means (`kinds`), 15-minute windows (`windows`), per-window
aggregation (`aggregate`), canonical JSON (`canonical`), window fingerprints and their chain
(`fingerprint`), and the Merkle trees behind settlement (`merkle`, `trees`). Importing any of them loads
no YAML, SQL, HTTP, web3 or logging library (tests/core/test_pure_import.py holds it to that).
"""
