#!/usr/bin/env bash
# The SCRAM users and ACLs of deploy/kafka/acls.txt (generated from the topic catalog). Safe to run again:
# a user's password is set again, an ACL that exists is kept. It only ADDS: to withdraw a permission that
# left the catalog, remove it by hand (deploy/RUNBOOK.md, "Kafka principals and ACLs").
source /attune-kafka/client.sh
BOOTSTRAP=${ATTUNE_KAFKA_BOOTSTRAP:-kafka:9092}
ACLS=/attune-kafka/acls.txt

principals=$(awk '!/^#/ && NF == 4 {print $1}' "$ACLS" | sort -u)
for principal in $principals; do
  variable="ATTUNE_PASSWORD_$(echo "$principal" | tr 'a-z-' 'A-Z_')"
  password="${!variable:-}"
  if [[ -z "$password" || ! "$password" =~ ^[A-Za-z0-9_-]+$ ]]; then
    echo "kafka-init: $variable must be set to letters, digits, - and _ only (see .env.example)" >&2
    exit 1
  fi
  "$KAFKA_BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --alter \
    --entity-type users --entity-name "$principal" --add-config "SCRAM-SHA-512=[password=$password]" >/dev/null
  echo "kafka-init: SCRAM user $principal ready"
done

while read -r principal operation resource name; do
  [[ -z "$principal" || "$principal" == \#* ]] && continue
  "$KAFKA_BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add \
    --allow-principal "User:$principal" --operation "$operation" "--$resource" "$name" \
    --resource-pattern-type literal >/dev/null
  echo "kafka-init: User:$principal may $operation $resource $name"
done < "$ACLS"
echo "kafka-init: done"
