"""The malloc settings of long-running processes (devledger/memory.py): big buffers go back when freed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devledger.memory import LARGE_ALLOCATION, _glibc

pytestmark = pytest.mark.skipif(_glibc("mallopt") is None, reason="glibc's malloc only")

# A fresh interpreter frees an 8 MiB buffer three times and prints how much more anonymous memory it holds
# than before. The first such block glibc maps; once that is freed, glibc raises its threshold to 8 MiB and
# serves the next ones from its heap, whose free top it keeps (its trim threshold rises with it).
FREED_BUFFERS = """
import sys
from pathlib import Path
from devledger.memory import map_large_allocations

def anon_kib():
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssAnon:"))
    return int(line.split()[1])

if sys.argv[1] == "mapped":
    assert map_large_allocations()
before = anon_kib()
for _ in range(3):
    buffer = bytearray(8 * 1024 * 1024)  # zero-filled: every page touched
    del buffer
print(anon_kib() - before)
"""


def kept_after_freeing(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", FREED_BUFFERS, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_freed_large_buffers_are_given_back() -> None:
    """With map_large_allocations, freed 8 MiB buffers leave nothing resident (without it, 8 MiB stays)."""
    assert LARGE_ALLOCATION <= 1024 * 1024
    assert kept_after_freeing("mapped") < 1024
    assert kept_after_freeing("default") > 4 * 1024  # what the setting is for: glibc alone keeps it
