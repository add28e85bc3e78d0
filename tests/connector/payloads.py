"""Orion's notification payloads exactly as shown in reference/orion.md and seed 003 Figure 16."""

import json

NORMALIZED = (
    '{"subscriptionId":"57458eb60962ef754e7c0998","data":[{"id":"urn:ngsi-ld:SMX:BBB6099","type":"SMX",\n'
    ' "P":{"type":"Number","value":-84.891,"metadata":{"TimeInstant":{"type":"DateTime",'
    '"value":"2019-03-18T16:13:45.275Z"}}},\n'
    ' "TimeInstant":{"type":"DateTime","value":"2019-03-18T16:13:45.275Z","metadata":{}}}]}'
)
KEY_VALUES = '{"subscriptionId":"...","data":[{"id":"Room1","type":"Room","temperature":23,"humidity":70}]}'
SIMPLIFIED_NORMALIZED = (
    '{"id":"urn:ngsi-ld:SMX:BBB6099","type":"SMX",'
    '"P":{"type":"Number","value":-84.891,"metadata":{"TimeInstant":{"type":"DateTime",'
    '"value":"2019-03-18T16:13:45.275Z"}}}}'
)
SIMPLIFIED_KEY_VALUES = '{"id":"Room1","type":"Room","temperature":23,"humidity":70}'
LEGACY = """{"subscriptionId":"5c8fbdc3f382b7ba2d5c660d","originator":"localhost",
 "contextResponses":[{"contextElement":{"type":"SMX","isPattern":"false","id":"urn:ngsi-ld:SMX:BBB6099",
   "attributes":[{"name":"P","type":"W","value":"-84.891",
     "metadatas":[{"name":"TimeInstant","type":"ISO8601","value":"2019-03-18T16:13:45.275Z"}]}]},
   "statusCode":{"code":"200","reasonPhrase":"OK"}}]}"""
LD = """{"id":"urn:ngsi-ld:Notification:5fd0fa684eb81930c97005f3","type":"Notification",
 "subscriptionId":"urn:ngsi-ld:subscriptions:s1","notifiedAt":"2024-03-18T16:13:46.001Z",
 "data":[{"id":"urn:ngsi-ld:SMX:BBB6099","type":"SMX",
   "P":{"type":"Property","value":-84.891,"unitCode":"WTT","observedAt":"2024-03-18T16:13:45.275Z"},
   "refMeter":{"type":"Relationship","object":"urn:ngsi-ld:Meter:1"}}]}"""

ORION_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Fiware-ServicePath": "/",
    "Fiware-Correlator": "9e10fc36-e5a7-11e8-a0a6-0242ac1a0005; cbnotif=1",
    "User-Agent": "orion/4.1.0 libcurl/7.74.0",
}


def normalized(entity_id: str, when: str, power: float, attr: str = "P") -> str:
    """A normalized notification for one SMX entity with one power value at `when`."""
    time_meta = {"TimeInstant": {"type": "DateTime", "value": when}}
    entity = {
        "id": entity_id,
        "type": "SMX",
        attr: {"type": "Number", "value": power, "metadata": time_meta},
        "TimeInstant": {"type": "DateTime", "value": when, "metadata": {}},
    }
    return json.dumps({"subscriptionId": "57458eb60962ef754e7c0998", "data": [entity]})
