#!/usr/bin/env bash
# Creates the local fleet on Docker: a registry (kind-registry, localhost:5001 on this machine)
# and three kind clusters (image-cloner-hub, -member-1, -member-2) whose containerd pulls from it
# through hosts.toml. Idempotent: existing clusters and the registry are kept.
# Needs docker and kind (v0.20+). Prints the registry's address on the kind network last.
#
#   KIND_NODE_IMAGE  the node image, passed to kind create cluster --image (default: kind's own,
#                    which kind pulls; make e2e-kind passes the one make node-image builds)
#   REGISTRY_IMAGE   the registry's image (default registry:3; make e2e-kind passes
#                    image-cloner/registry, built by hack/kind/images.sh where nothing can be pulled)
set -euo pipefail
cd "$(dirname "$0")"

reg_name=kind-registry
reg_port=5001
clusters=(hub member-1 member-2)
registry_image=${REGISTRY_IMAGE:-registry:3}
image_args=()
[ -n "${KIND_NODE_IMAGE:-}" ] && image_args=(--image "$KIND_NODE_IMAGE")

# 1. The registry (the CNCF distribution registry, as in the tests), on 127.0.0.1 only. Deletes
#    are on: the e2e specs delete an image upstream to show its Pods still start from the backup.
if [ "$(docker inspect -f '{{.State.Running}}' "$reg_name" 2>/dev/null || true)" != true ]; then
  docker rm -f "$reg_name" >/dev/null 2>&1 || true
  docker run -d --restart=always -p "127.0.0.1:${reg_port}:5000" --network bridge --name "$reg_name" \
    -e REGISTRY_STORAGE_DELETE_ENABLED=true "$registry_image"
fi

# 2. The clusters.
for c in "${clusters[@]}"; do
  if ! kind get clusters | grep -qx "image-cloner-$c"; then
    kind create cluster --config "$c.yaml" "${image_args[@]}" --wait 3m
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
