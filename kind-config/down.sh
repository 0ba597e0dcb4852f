#!/usr/bin/env bash
# Deletes what up.sh created: the three kind clusters and the registry container.
set -uo pipefail
for c in hub member-1 member-2; do
  kind delete cluster --name "image-cloner-$c"
done
docker rm -f kind-registry
