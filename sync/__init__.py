"""Field sync between an assessor's offline device and the centre (framework-free)."""

PROTOCOL_VERSION = 1  # the push/pull protocol this server speaks
SCHEMA_VERSION = "0010"  # the newest migration, which devices name so the server can answer "upgrade required"
