#!/usr/bin/env bash
# make e2e-kind: the e2e specs against three kind clusters running image-cloner from its own
# images and overlays, as a user would run it, with nothing pulled from outside this machine.
#
#   1. a Docker engine: the one that answers, else hack/kind/docker.sh starts one (root only);
#   2. the node image (hack/kind/node-image.sh, cached) and the registry image
#      (hack/kind/images.sh registry), both built here;
#   3. kind-config/up.sh: clusters image-cloner-{hub,member-1,member-2} on that node image, and
#      registry kind-registry (anonymous, deletes on): the "upstream" the specs push samples to,
#      and where our images go;
#   4. a second registry, kind-backup, with htpasswd auth (accounts pusher and puller, entries
#      made by hack/kind/imagetool htpasswd): the backup; every node pulls from it through a
#      hosts.toml, as up.sh does for kind-registry;
#   5. the hub and agent images (hack/kind/images.sh, no Docker build), pushed to kind-registry;
#   6. deploy/overlays/hub in the hub cluster and deploy/overlays/agent in member-1, images
#      pinned by a generated kustomization; member-2's agent with `helm install` from
#      charts/image-cloner (examples/agent.yaml, helm built by hack/helm.sh), its namespace
#      labelled as NOTES.txt says; the configuration and the two credential Secrets;
#   7. member-1 registered with `hub register`, member-2 with `hub register --cluster-api`;
#   8. go test -tags e2e -run '^(TestExternal|TestKindNodes)$' ./e2e/: every spec of TestExternal,
#      then the specs only real nodes can answer (e2e/nodes.go), last because one of them stops
#      the upstream registry; E2E_KIND_HOST_ADDRESS, this machine's address on the kind network,
#      is where the API servers reach the webhook InjectedSidecar serves;
#   9. teardown: clusters, registries, and the dockerd step 1 started. E2E_KIND_KEEP=1 keeps
#      everything up instead (kind-config/down.sh, docker rm -f kind-backup and
#      hack/kind/docker.sh stop remove it later).
#
# Linux only: the specs (on this machine) and the hub (in a pod) must reach both registries at one
# address, the kind network's, which Docker Desktop does not route to the host.
# Needs kind and kubectl on PATH (the Makefile puts ./bin and the test assets first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "e2e-kind: $*" >&2; exit 1; }
t0=$SECONDS
step() { echo "==> [$((SECONDS - t0))s] $*"; }

# $BASH: the scripts run with the bash running this one, whatever PATH holds.
engine=$("$BASH" hack/kind/docker.sh start) || exit 1  # its one line of stdout: "docker: running" or "docker: started"
command -v kind >/dev/null || die "kind not found on PATH (make e2e-kind installs it into ./bin)"
command -v kubectl >/dev/null || die "kubectl not found on PATH (make test-deps builds one)"
helm=$(hack/helm.sh | tail -1) || die "hack/helm.sh gave no helm"

ns=image-cloner-system
work=${E2E_KIND_DIR:-$root/artifacts/e2e-kind}
mkdir -p "$work"
tag=${E2E_KIND_TAG:-e2e-$(git rev-parse --short HEAD 2>/dev/null || echo dev)}
CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"

teardown() {
  local rc=$?
  if [ "${E2E_KIND_KEEP:-0}" = 1 ]; then
    echo "e2e-kind: E2E_KIND_KEEP=1: everything stays up: kubeconfigs in $work; kind-config/down.sh, docker rm -f kind-backup and hack/kind/docker.sh stop remove it"
    exit "$rc"
  fi
  step "teardown"
  kind-config/down.sh >/dev/null 2>&1 || true
  docker rm -f kind-backup >/dev/null 2>&1 || true
  if [ "$engine" = "docker: started" ]; then
    "$BASH" hack/kind/docker.sh stop
  fi
  echo "e2e-kind: $([ "$rc" = 0 ] && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - t0))s"
  exit "$rc"
}
trap teardown EXIT

step "node image (hack/kind/node-image.sh)"
node_image=$(hack/kind/node-image.sh | tail -1)
step "registry image (hack/kind/images.sh registry)"
registry_image=$(hack/kind/images.sh registry | tail -1)

step "clusters and the upstream registry (kind-config/up.sh, --image $node_image)"
KIND_NODE_IMAGE=$node_image REGISTRY_IMAGE=$registry_image kind-config/up.sh 2>&1 | tee "$work/up.log"
up_ip=$(docker inspect -f '{{.NetworkSettings.Networks.kind.IPAddress}}' kind-registry)
[ -n "$up_ip" ] || die "kind-registry has no address on the kind network"

step "backup registry kind-backup with htpasswd auth"
imagetool="$CACHE/kind/bin/imagetool"  # hack/kind/images.sh built it
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
    printf %s "$pusher_pw" | "$imagetool" htpasswd pusher
    printf %s "$puller_pw" | "$imagetool" htpasswd puller
  } > "$work/auth/htpasswd"
  (umask 077; printf %s "$pusher_pw" > "$work/pusher.password"; printf %s "$puller_pw" > "$work/puller.password")
  docker run -d --restart=always --network kind --name kind-backup -p 127.0.0.1:5002:5000 \
    -v "$work/auth:/auth:ro" \
    -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=image-cloner-e2e \
    -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd \
    "$registry_image" >/dev/null
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

step "images localhost:5001/image-cloner/{hub,agent}:$tag (hack/kind/images.sh, pushed to kind-registry)"
IMAGE_REPO=localhost:5001/image-cloner IMAGE_TAG="$tag" IMAGE_PUSH=1 hack/kind/images.sh hub agent

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

# member-2's agent is installed as a Helm user would: the chart with examples/agent.yaml, the
# image pinned by values, `--create-namespace`, then the labels NOTES.txt tells them to add (Pod
# Security restricted, the webhooks' opt-out). `helm upgrade --install` so a kept cluster
# (E2E_KIND_KEEP=1) can run again.
helm_agent() { # kubeconfig
  "$helm" --kubeconfig "$1" upgrade --install image-cloner charts/image-cloner -n "$ns" --create-namespace \
    -f charts/image-cloner/examples/agent.yaml \
    --set agent.image.repository=localhost:5001/image-cloner/agent --set agent.image.tag="$tag" \
    --wait --timeout 5m
  kubectl --kubeconfig "$1" label namespace "$ns" --overwrite pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/warn=restricted validate-backups.image-cloner.io=disable
}

step "the agents (member-1 with kustomize, member-2 with helm), and the members' registrations"
kubeconfigs="hub=$work/hub.kubeconfig"
for m in member-1 member-2; do
  kind get kubeconfig --name "image-cloner-$m" > "$work/$m.kubeconfig"
  if [ "$m" = member-2 ]; then
    helm_agent "$work/$m.kubeconfig"
  else
    kubectl --kubeconfig "$work/$m.kubeconfig" apply --server-side --force-conflicts -k "$work/overlays/agent"
  fi
  # Each member runs what it was meant to: the chart's release labels on member-2's agent only.
  chart_label=$(kubectl --kubeconfig "$work/$m.kubeconfig" -n "$ns" get deployment image-cloner-agent -o jsonpath='{.metadata.labels.helm\.sh/chart}')
  case "$m:$chart_label" in
    member-1:) ;;
    member-2:image-cloner-*) "$helm" --kubeconfig "$work/$m.kubeconfig" -n "$ns" status image-cloner | sed -n '1,/^NOTES:/p' ;;
    *) die "$m's agent has helm.sh/chart=\"$chart_label\": member-1 must run deploy/overlays/agent, member-2 the Helm chart" ;;
  esac
  extra=()
  [ "$m" = member-2 ] && extra=(--cluster-api)
  # The hub's pod and the specs on this machine both reach a member's API server at its node's
  # address on the kind network (in the API server's certificate: kubeadm's advertise address).
  # The node's name resolves in pods only, not here, where RegistrationConventions connects.
  node_ip=$(docker inspect -f '{{.NetworkSettings.Networks.kind.IPAddress}}' "image-cloner-$m-control-plane")
  [ -n "$node_ip" ] || die "image-cloner-$m-control-plane has no address on the kind network"
  "bin/linux_$(go env GOARCH)/hub" register --kubeconfig "$work/$m.kubeconfig" --name "$m" --namespace "$ns" \
    --server "https://$node_ip:6443" \
    --hub-kubeconfig "$work/hub.kubeconfig" "${extra[@]}"
  kubectl --kubeconfig "$work/$m.kubeconfig" -n "$ns" rollout status deployment --timeout 5m
  kubeconfigs="$kubeconfigs,$m=$work/$m.kubeconfig"
done

# This machine's address on the kind network (its gateway, the bridge's own address): where the
# members' API servers, in containers, reach webhooks the specs serve (InjectedSidecar's injector).
host_ip=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -m1 -F . || true)
if [ -z "$host_ip" ]; then
  bridge="br-$(docker network inspect kind -f '{{.Id}}' | cut -c1-12)"
  host_ip=$(ip -4 -o addr show dev "$bridge" 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
fi
[ -n "$host_ip" ] || die "no IPv4 address of this machine on the kind network"

step "the e2e specs (TestExternal, then TestKindNodes)"
E2E_KUBECONFIGS="$kubeconfigs" E2E_UPSTREAM="$up_ip:5000" E2E_KIND_HOST_ADDRESS="$host_ip" \
  E2E_KIND_UPSTREAM_CONTAINER=kind-registry E2E_KIND_BACKUP_CONTAINER=kind-backup \
  E2E_KIND_PULL_USER=puller E2E_KIND_RUNNABLE_BINARY="$CACHE/kind/bin/pause" \
  go test -tags e2e -count=1 -timeout 30m -run "${E2E_KIND_RUN:-^(TestExternal|TestKindNodes)\$}" -v ./e2e/ 2>&1 |
  tee "$work/go-test.log"
