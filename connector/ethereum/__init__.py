"""Oracle bridge to the Ethereum settlement contract: relay confirmed window summaries, settle imbalances.

Modules: `contract` (artifact, meter ids, the on-chain hash chain in Python), `anvil` (dev node launcher),
`client` (web3 connection, keys, contract address), `gateway` (what the relay needs from a node, and its
web3 implementation), `testing` (a recording fake gateway), `sender` (one local-nonce sender per key,
EIP-1559 fees), `errors` (what to do next after a failure), `models` (outbox tables), `relay` (enqueue,
dispatch, confirm, settle), `deploy`, `plans` (CSV import), `report` (settlement rows).
"""
