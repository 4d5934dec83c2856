"""Field sync between an assessor's offline device and the centre (framework-free).

`sync.centre` is the centre's side of the protocol, `sync.device` the device's; both use the tracker's core
(models, services, rules) and neither imports Flask or the web layer.
"""

PROTOCOL_VERSION = 1  # the push/pull protocol this server speaks
SCHEMA_VERSION = "0010"  # the newest migration, which devices name so the server can answer "upgrade required"
