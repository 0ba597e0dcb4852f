#!/usr/bin/env bash
# make e2e-kind: the e2e specs (e2e/specs.go, through TestExternal) against three kind clusters
# running image-cloner from its own images and overlays, as a user would run it.
#
#   1. kind-config/up.sh: clusters image-cloner-{hub,member-1,member-2} and registry kind-registry
#      (anonymous: the "upstream" the specs push samples to, and where our images go);
#   2. a second registry, kind-backup, with htpasswd auth (accounts pusher and puller): the backup;
#      every node pulls from it through a hosts.toml, as up.sh does for kind-registry;
#   3. docker build of bin/hub and bin/agent's images, pushed to kind-registry;
#   4. deploy/overlays/hub in the hub cluster and deploy/overlays/agent in each member, images
#      pinned by a generated kustomization; the configuration and the two credential Secrets;
#   5. member-1 registered with `hub register`, member-2 with `hub register --cluster-api`;
#   6. go test -tags e2e -run TestExternal ./e2e/ with E2E_KUBECONFIGS and E2E_UPSTREAM.
#
# Linux only: the specs (on this machine) and the hub (in a pod) must reach both registries at one
# address, the kind network's, which Docker Desktop does not route to the host.
# Needs a running Docker engine, kind and kubectl on PATH (the Makefile puts ./bin and the test
# assets first). The clusters stay up afterwards; E2E_KIND_DOWN=1 deletes them at the end, or run
# kind-config/down.sh. Untested here: the machine this was written on has no Docker engine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "e2e-kind: $*" >&2; exit 1; }
step() { echo "==> $*"; }

command -v docker >/dev/null || die "docker not found: make e2e-kind needs Docker; make e2e runs the same specs without it"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed): start one, or run make e2e instead"
command -v kind >/dev/null || die "kind not found on PATH (make e2e-kind installs it into ./bin)"
command -v kubectl >/dev/null || die "kubectl not found on PATH (make test-deps builds one)"

ns=image-cloner-system
work=${E2E_KIND_DIR:-$root/artifacts/e2e-kind}
mkdir -p "$work"
tag=${E2E_KIND_TAG:-e2e-$(git rev-parse --short HEAD 2>/dev/null || echo dev)}

step "clusters and the upstream registry (kind-config/up.sh)"
kind-config/up.sh | tee "$work/up.log"
up_ip=$(docker inspect -f '{{.NetworkSettings.Networks.kind.IPAddress}}' kind-registry)
[ -n "$up_ip" ] || die "kind-registry has no address on the kind network"

step "backup registry kind-backup with htpasswd auth"
pusher_pw=${E2E_KIND_PUSH_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
puller_pw=${E2E_KIND_PULL_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
if [ "$(docker inspect -f '{{.State.Running}}' kind-backup 2>/dev/null || true)" = true ]; then
  # Reuse its accounts: the passwords were saved when it was created.
  pusher_pw=$(cat "$work/pusher.password") || die "kind-backup runs but $work/pusher.password is gone: docker rm -f kind-backup and retry"
  puller_pw=$(cat "$work/puller.password")
else
  docker rm -f kind-backup >/dev/null 2>&1 || true
  mkdir -p "$work/auth"
  {
    docker run --rm --entrypoint htpasswd httpd:2.4-alpine -Bbn pusher "$pusher_pw"
    docker run --rm --entrypoint htpasswd httpd:2.4-alpine -Bbn puller "$puller_pw"
  } | grep -v '^$' > "$work/auth/htpasswd"
  (umask 077; printf %s "$pusher_pw" > "$work/pusher.password"; printf %s "$puller_pw" > "$work/puller.password")
  docker run -d --restart=always --network kind --name kind-backup -p 127.0.0.1:5002:5000 \
    -v "$work/auth:/auth:ro" \
    -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=image-cloner-e2e \
    -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd \
    registry:3 >/dev/null
fi
backup_ip=$(docker inspect -f '{{.NetworkSettings.Networks.kind.IPAddress}}' kind-backup)
[ -n "$backup_ip" ] || die "kind-backup has no address on the kind network"
backup_registry="$backup_ip:5000/backup"
for c in hub member-1 member-2; do
  for node in $(kind get nodes --name "image-cloner-$c"); do
    docker exec "$node" mkdir -p "/etc/containerd/certs.d/$backup_ip:5000"
    printf 'server = "http://kind-backup:5000"\n\n[host."http://kind-backup:5000"]\n  capabilities = ["pull", "resolve"]\n' |
      docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/$backup_ip:5000/hosts.toml"
  done
done

step "images localhost:5001/image-cloner/{hub,agent}:$tag"
make docker-build IMAGE_REPO=localhost:5001/image-cloner IMAGE_TAG="$tag"
docker push "localhost:5001/image-cloner/hub:$tag"
docker push "localhost:5001/image-cloner/agent:$tag"

# Overlays of ours that pin the images; nodes pull localhost:5001 through up.sh's hosts.toml.
for o in hub agent; do
  mkdir -p "$work/overlays/$o"
  base=$(realpath --relative-to="$work/overlays/$o" "$root/deploy/overlays/$o")
  cat > "$work/overlays/$o/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $base
images:
  - {name: image-cloner/hub, newName: localhost:5001/image-cloner/hub, newTag: "$tag"}
  - {name: image-cloner/agent, newName: localhost:5001/image-cloner/agent, newTag: "$tag"}
YAML
done

dockerconfig() { # user password
  printf '{"auths":{"%s:5000":{"auth":"%s"}}}' "$backup_ip" "$(printf '%s:%s' "$1" "$2" | base64 -w0)"
}

step "the hub"
kind get kubeconfig --name image-cloner-hub > "$work/hub.kubeconfig"
hubctl() { kubectl --kubeconfig "$work/hub.kubeconfig" "$@"; }
hubctl apply --server-side --force-conflicts -k "$work/overlays/hub"
hubctl -n "$ns" patch configmap image-cloner-configuration --type merge \
  -p "{\"data\":{\"BACKUP_REGISTRY\":\"$backup_registry\"}}"
for s in push:pusher:"$pusher_pw" pull:puller:"$puller_pw"; do
  IFS=: read -r kind user pw <<<"$s"
  hubctl -n "$ns" create secret generic "image-cloner-$kind-credentials" \
    --type kubernetes.io/dockerconfigjson --from-literal=.dockerconfigjson="$(dockerconfig "$user" "$pw")" \
    --dry-run=client -o yaml | hubctl apply --server-side --force-conflicts -f -
done
hubctl -n "$ns" rollout restart deployment
hubctl -n "$ns" rollout status deployment --timeout 5m

step "the agents, and the members' registrations"
make build
kubeconfigs="hub=$work/hub.kubeconfig"
for m in member-1 member-2; do
  kind get kubeconfig --name "image-cloner-$m" > "$work/$m.kubeconfig"
  kubectl --kubeconfig "$work/$m.kubeconfig" apply --server-side --force-conflicts -k "$work/overlays/agent"
  extra=()
  [ "$m" = member-2 ] && extra=(--cluster-api)
  # The hub's pod reaches a member's API server by its node's name on the kind network.
  bin/hub register --kubeconfig "$work/$m.kubeconfig" --name "$m" --namespace "$ns" \
    --server "https://image-cloner-$m-control-plane:6443" \
    --hub-kubeconfig "$work/hub.kubeconfig" "${extra[@]}"
  kubectl --kubeconfig "$work/$m.kubeconfig" -n "$ns" rollout status deployment --timeout 5m
  kubeconfigs="$kubeconfigs,$m=$work/$m.kubeconfig"
done

step "the e2e specs (TestExternal)"
rc=0
E2E_KUBECONFIGS="$kubeconfigs" E2E_UPSTREAM="$up_ip:5000" \
  go test -tags e2e -count=1 -timeout 20m -run '^TestExternal$' -v ./e2e/ || rc=$?

if [ "${E2E_KIND_DOWN:-0}" = 1 ]; then
  kind-config/down.sh
  docker rm -f kind-backup >/dev/null 2>&1 || true
else
  echo "the clusters stay up: kubeconfigs in $work; kind-config/down.sh and docker rm -f kind-backup remove them"
fi
exit "$rc"
