"""What an attribute of an entity type means for aggregation: its kind, unit and register direction.

Settings (`entity_types.<type>.attributes.<attr>` in config/connector.yaml) are read into these; the
aggregation and fingerprints use them without knowing where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass

ATTRIBUTE_KINDS = ("power", "energy_register", "stats")
REGISTER_DIRECTIONS = ("net", "import", "export")


@dataclass(frozen=True)
class AttributeSpec:
    """What one attribute of an entity type means for aggregation."""

    kind: str = "stats"  # power (W -> Wh by integration) | energy_register (delta) | stats
    unit: str = ""  # W or kW for power; Wh or kWh for a register
    # Sign of a register's energy: "import" registers count drawn energy, reported negative (the seeds'
    # generator convention, where consumption is negative); "export" and "net" registers as they count.
    direction: str = "net"
