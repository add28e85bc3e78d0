"""`smartmeter-connector devledger` (filled in by the dev ledger issue)."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the devledger sub-command."""
