"""The built wheel, installed outside the checkout, carries everything the connector loads and serves.

Every other test imports the checkout (editable install), so a file missing from the package (Alembic's
env.py once) is invisible to them. Here the wheel is built from a copy of the sources, installed into a
fresh venv in a temporary folder, and run from another temporary folder without PYTHONPATH: `db upgrade`,
`run` on the embedded defaults, one /notify, the reading read back through the query API.

The fresh venv reaches the dependencies through a .pth line naming the project venv's site-packages (a
plain path line: the .pth files there, among them the editable install's, are not processed), so nothing
is downloaded (but pyproject's build backend, setuptools>=70.1, when this venv's setuptools is older than
that), and the checkout is not importable.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "config", "contracts")
SOURCES += ("requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt")
PACKAGES = ("connector", "ngsi", "devledger", "demo")
# Files loaded by path at run time (Path(__file__) / Alembic's script location), relative to site-packages.
LOADED_BY_PATH = (
    "connector/store/migrations/env.py",
    "connector/store/migrations/script.py.mako",
    "connector/contracts/Settlement.json",
    "connector/default_config/connector.yaml",
)
NOTIFICATION = {
    "subscriptionId": "5f0c0ffee0ddba11c0ffee01",
    "data": [
        {
            "id": "urn:ngsi-ld:SMX:WHEEL1",
            "type": "SMX",
            "P": {"type": "Number", "value": -42.5, "metadata": {}},
            "TimeInstant": {"type": "DateTime", "value": "2026-03-18T16:13:45.275Z", "metadata": {}},
        }
    ],
}

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "smartmeter-connector"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_wheel(tmp: Path) -> Path:
    """Build the wheel from a copy of the package sources (the build leaves nothing in the checkout)."""
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES + PACKAGES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    out = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check"]
    if _setuptools_builds_wheels():  # else pip fetches pyproject's build backend into an isolated env
        cmd.append("--no-build-isolation")
    done = subprocess.run([*cmd, "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("smartmeter_connector-*.whl")
    return wheel


def _setuptools_builds_wheels() -> bool:
    """True when this venv's setuptools (70.1 or later) builds wheels without the `wheel` package."""
    try:
        from setuptools import __version__
    except ImportError:
        return False
    major, minor = (int(part) for part in __version__.split(".")[:2])
    return (major, minor) >= (70, 1)


def install(wheel: Path, tmp: Path) -> Installed:
    """A fresh venv outside the checkout with only the wheel installed; dependencies via a .pth line."""
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
        .decode()
        .strip()
    )
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"]
    done = subprocess.run([*pip, "--disable-pip-version-check", str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return Installed(wheel, env_dir, site)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    return install(build_wheel(tmp), tmp)


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """An environment without PYTHONPATH, the store and state in a temporary folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CONNECTOR_", "VIRTUAL_ENV"))}
    env.update(
        CONNECTOR_STORE_URL=f"sqlite:///{tmp_path / 'store.sqlite3'}",
        CONNECTOR_STATE_DIR=str(tmp_path / "var"),
        CONNECTOR_KEYSTORE_PATH=str(tmp_path / "var" / "keystore"),
        CONNECTOR_LEDGER_EMBEDDED_DATA=str(tmp_path / "var" / "devledger"),
        CONNECTOR_LEDGER_EMBEDDED_PORT=str(free_port()),
        CONNECTOR_LEDGER_EMBEDDED_WS_PORT=str(free_port()),
        CONNECTOR_LOGGING_LEVEL="WARNING",
    )
    return env


def test_wheel_carries_every_file_the_code_loads(installed):
    """The wheel holds each package's modules and data files, Alembic's env.py and versions included."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for rel in LOADED_BY_PATH:
        assert rel in names, rel
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert str(path.relative_to(ROOT)) in names, path


def test_installed_package_is_imported_from_the_venv_not_the_checkout(installed, run_env, tmp_path):
    """From a temporary folder without PYTHONPATH, `connector` comes from the fresh venv."""
    code = "import connector, ngsi, devledger; print(connector.__file__, ngsi.__file__, devledger.__file__)"
    python = installed.venv / "bin" / "python"
    out = subprocess.check_output([str(python), "-c", code], cwd=tmp_path, env=run_env, text=True)
    for path in out.split():
        assert Path(path).is_relative_to(installed.site_packages), path
        assert not Path(path).is_relative_to(ROOT), path


def test_installed_package_upgrades_the_store_serves_and_stores_a_notification(installed, run_env, tmp_path):
    """`db upgrade`, then `run` on the embedded defaults: one /notify is answered 2xx and read back."""
    upgrade = subprocess.run(
        [str(installed.command), "db", "upgrade"], cwd=tmp_path, env=run_env, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    env = {**run_env, "CONNECTOR_LISTEN": f"127.0.0.1:{port}"}
    with serving(installed, env, tmp_path) as url:
        version = get_json(url + "/version")
        assert version["version"] == "0.1.0" and version["schema"]
        status, answer = post_json(url + "/notify", NOTIFICATION)
        assert status == 200 and answer["accepted"] == 1, answer
        page = get_json(url + "/v1/meters/urn:ngsi-ld:SMX:WHEEL1/readings")
        assert [(r["attr"], r["value"]) for r in page["readings"]] == [("P", -42.5)], page


class serving:  # noqa: N801 - used as a context manager like a function
    """`smartmeter-connector run` as a child process until its /health answers; stopped with SIGTERM."""

    def __init__(self, installed: Installed, env: dict[str, str], cwd: Path) -> None:
        self.cmd = [str(installed.command), "run"]
        self.env, self.cwd = env, cwd
        self.url = "http://127.0.0.1:" + env["CONNECTOR_LISTEN"].rsplit(":", 1)[1]

    def __enter__(self) -> str:
        self.log = (self.cwd / "connector.log").open("w")
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=self.log, stderr=self.log)
        for _ in range(600):  # up to 60 s on a busy machine; returns as soon as it answers
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/version", timeout=2):
                    return self.url
            except urllib.error.HTTPError:  # any HTTP answer: it is serving
                return self.url
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise AssertionError((self.cwd / "connector.log").read_text()[-3000:])

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def post_json(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())
