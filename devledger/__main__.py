"""`python -m devledger`: the dev ledger alone, as `smartmeter-connector devledger` runs it, without the
connector's settings; `--parent-pid PID` ends it with that process (the connector's ledger process runs
its embedded dev ledger so, in a process of its own)."""

from __future__ import annotations

import argparse
import os
import sys

from devledger.cli import handler, register
from devledger.lifecycle import die_with_parent


def main(argv: list[str] | None = None) -> int:
    """Parse the devledger sub-command's options and serve."""
    parser = argparse.ArgumentParser(prog="python -m devledger")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--parent-pid", type=int)
    known, rest = parent.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.parent_pid is not None:
        die_with_parent()
        if os.getppid() != known.parent_pid:  # the parent died before the line above took effect
            return 0
    args = parser.parse_args(["devledger", *rest])
    return int(handler(args, None))


if __name__ == "__main__":
    sys.exit(main())
