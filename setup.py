from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="smartmeter-connector",
    version="0.1.0",
    description="FIWARE smart-meter readings made tamper-evident on BigchainDB and settled on Ethereum",
    python_requires=">=3.11",
    packages=find_packages(
        include=["connector", "connector.*", "ngsi", "ngsi.*", "devledger", "devledger.*", "demo", "demo.*"]
    )
    # The shipped configuration (config/connector.yaml), installed as connector/default_config/ so an
    # installed package starts with the same defaults as a checkout (connector/settings.py DEFAULT_CONFIG).
    + ["connector.default_config"],
    package_dir={"connector.default_config": "config"},
    # Everything the code loads by path (tests/packaging/test_wheel.py checks the built wheel): Alembic's
    # env.py is not in a package (no __init__.py), so find_packages alone leaves it out.
    package_data={
        "connector": [
            "REVISION",  # the git revision GET /version reports, when the build wrote it (docker/Dockerfile)
            "store/migrations/env.py",
            "store/migrations/*.mako",
            "store/migrations/versions/*.py",
            "contracts/*.json",
        ],
        "connector.default_config": ["connector.yaml"],
    },
    # bigchaindb-driver 0.6.2 and cryptoconditions 0.8.1 are installed with --no-deps (their pins do not
    # build on Python 3.11): see requirements-nodeps.txt and the Makefile.
    install_requires=requirements("requirements.txt"),
    entry_points={"console_scripts": ["smartmeter-connector=connector.cli:main"]},
)
