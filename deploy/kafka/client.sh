# Sourced by healthcheck.sh and init.sh: writes the admin's client properties (SASL/PLAIN) to $ADMIN_CONFIG.
set -euo pipefail
: "${ATTUNE_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD (see .env.example)}"
ADMIN_CONFIG=$(mktemp)
chmod 600 "$ADMIN_CONFIG"
cat > "$ADMIN_CONFIG" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${ATTUNE_ADMIN_PASSWORD}";
PROPERTIES
trap 'rm -f "$ADMIN_CONFIG"' EXIT
KAFKA_BIN=/opt/kafka/bin
