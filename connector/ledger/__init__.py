"""BigchainDB anchoring: meter assets (CREATE), window TRANSFER-to-self, the outbox and its dispatcher."""
