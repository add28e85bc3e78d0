"""Sub-commands of this area (filled in by the issue that builds it)."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this area's sub-commands."""
