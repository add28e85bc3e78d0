"""smartmeter-connector: FIWARE smart-meter readings, tamper-evident on BigchainDB, settled on Ethereum."""

__version__ = "0.1.0"
