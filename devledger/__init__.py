"""A single-node ledger faithful to the BigchainDB 2.2.2 HTTP API, for development, tests and the demo."""
