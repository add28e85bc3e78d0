"""The off-chain store: SQLAlchemy models, engine set-up and migrations."""
