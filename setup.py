from pathlib import Path

from setuptools import find_packages, setup


def requirements(name: str) -> list[str]:
    lines = (Path(__file__).parent / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="smartmeter-connector",
    version="0.1.0",
    description="FIWARE smart-meter readings made tamper-evident on BigchainDB and settled on Ethereum",
    python_requires=">=3.11",
    packages=find_packages(
        include=["connector", "connector.*", "ngsi", "ngsi.*", "devledger", "devledger.*"]
    ),
    package_data={
        "connector": ["store/migrations/*.mako", "store/migrations/versions/*.py", "contracts/*.json"]
    },
    # bigchaindb-driver 0.6.2 and cryptoconditions 0.8.1 are installed with --no-deps (their pins do not
    # build on Python 3.11): see requirements-nodeps.txt and the Makefile.
    install_requires=requirements("requirements.txt"),
    entry_points={"console_scripts": ["smartmeter-connector=connector.cli:main"]},
)
