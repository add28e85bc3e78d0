"""The core is pure by import: loading any of its modules brings no YAML, SQL, HTTP, web3 or logging."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import connector.core

CORE_MODULES = sorted(m.name for m in pkgutil.iter_modules(connector.core.__path__, "connector.core."))
FORBIDDEN = ("yaml", "sqlalchemy", "flask", "requests", "web3", "structlog", "prometheus_client", "logging")
ROOT = Path(__file__).resolve().parents[2]


def test_the_core_has_the_modules_the_issue_names():
    """windows, aggregate, fingerprint, canonical, readings, trees, merkle and kinds live in the core."""
    names = {m.rsplit(".", 1)[1] for m in CORE_MODULES}
    assert names >= {
        "windows",
        "aggregate",
        "fingerprint",
        "canonical",
        "readings",
        "trees",
        "merkle",
        "kinds",
    }


@pytest.mark.parametrize("module", CORE_MODULES)
def test_importing_a_core_module_loads_no_io_library(module):
    """In a fresh interpreter, importing the module (from this tree) leaves every I/O library out of
    sys.modules."""
    code = (
        f"import json, sys; import {module} as m; "
        "print(json.dumps({'file': m.__file__, 'modules': sorted(sys.modules)}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    out = json.loads(run.stdout)
    assert Path(out["file"]).resolve().is_relative_to(ROOT), out["file"]
    loaded = {name.split(".")[0] for name in out["modules"]}
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
