#!/usr/bin/env bash
# Creates the local fleet on Docker: a registry (kind-registry, localhost:5001 on this machine)
# and three kind clusters (image-cloner-hub, -member-1, -member-2) whose containerd pulls from it
# through hosts.toml. Idempotent: existing clusters and the registry are kept.
# Needs docker and kind (v0.20+). Prints the registry's address on the kind network last.
set -euo pipefail
cd "$(dirname "$0")"

reg_name=kind-registry
reg_port=5001
clusters=(hub member-1 member-2)

# 1. The registry (the CNCF distribution registry, as in the tests), on 127.0.0.1 only.
if [ "$(docker inspect -f '{{.State.Running}}' "$reg_name" 2>/dev/null || true)" != true ]; then
  docker run -d --restart=always -p "127.0.0.1:${reg_port}:5000" --network bridge --name "$reg_name" registry:3
fi

# 2. The clusters.
for c in "${clusters[@]}"; do
  if ! kind get clusters | grep -qx "image-cloner-$c"; then
    kind create cluster --config "$c.yaml"
  fi
done

# 3. The registry joins the clusters' network, so nodes and pods reach it by name and address.
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$reg_name")" = null ]; then
  docker network connect kind "$reg_name"
fi
reg_ip=$(docker inspect -f '{{.NetworkSettings.Networks.kind.IPAddress}}' "$reg_name")

# 4. containerd in every node: localhost:5001 (what you push) and <ip>:5000 (what the hub pushes,
#    see README.md) both go to the registry over HTTP. No containerd restart is needed.
for c in "${clusters[@]}"; do
  for node in $(kind get nodes --name "image-cloner-$c"); do
    for host in "localhost:${reg_port}" "${reg_ip}:5000"; do
      docker exec "$node" mkdir -p "/etc/containerd/certs.d/$host"
      docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/$host/hosts.toml" < containerd/hosts.toml
    done
  done
  # Tell tools where the registry is (KEP-1755: ConfigMap local-registry-hosting in kube-public).
  kubectl --context "kind-image-cloner-$c" apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${reg_port}"
    hostFromClusterNetwork: "${reg_ip}:5000"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML
done

echo "registry: localhost:${reg_port} (this machine), ${reg_ip}:5000 (nodes and pods)"
