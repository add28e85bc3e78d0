"""The demo and the meter simulator: everything that makes readings up rather than receiving them.

`run` is `smartmeter-connector demo` (a whole connector, simulated meters, anchoring, verification);
`ethereum` adds anvil and the settlement contract to it (`demo --ethereum`); `simulator` is
`smartmeter-connector simulate` (meters posting to a connector's /notify, or Orion's entities),
with `profiles` (load and generation curves) and `payloads` (the notification bodies it writes).
"""
