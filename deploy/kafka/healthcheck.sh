#!/usr/bin/env bash
# The broker answers an authenticated client (the admin, over SASL/PLAIN).
source /attune-kafka/client.sh
"$KAFKA_BIN/kafka-broker-api-versions.sh" --bootstrap-server localhost:9092 --command-config "$ADMIN_CONFIG" >/dev/null
