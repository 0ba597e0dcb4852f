#!/usr/bin/env bash
# make node-image: builds the kind node image image-cloner's e2e-kind runs, offline, and prints
# its tag on the last line. `kind build node-image` cannot work without the internet (it fetches
# kindnetd, pause, etcd, coredns ...); this builds the same kind of image from parts made here:
#
#   rootfs   debootstrap --variant=minbase bookworm + kind's base package list, containerd,
#            runc, containernetworking-plugins (Debian's; bookworm's systemd still boots on a
#            cgroup v1 host)
#   kind     images/base/files of the sigs.k8s.io/kind module (entrypoint, units, containerd
#            config), with the steps of kind's images/base/Dockerfile redone
#   binaries kubelet, kubeadm, kubectl from hack/test-deps.sh's assets
#   images   preloaded into containerd's k8s.io namespace at their registry.k8s.io tags, built
#            with hack/kind/imagetool: kube-apiserver, kube-controller-manager, kube-scheduler,
#            kube-proxy (on the rootfs: it needs iptables), etcd (assets), coredns (built from
#            github.com/coredns/coredns at kubeadm's pinned version), pause (hack/kind/pause)
#   tweaks   static CNI (hack/kind/node/), kubelet --fail-cgroupv1=false, containerd
#            restrict_oom_score_adj and config_path
#
# The tag is image-cloner/kind-node:<kube version>-<key>, the key a hash of every version and of
# this recipe (this script, hack/kind/{node,pause,imagetool}/): a second run with nothing changed
# takes seconds. Parts are cached under ${IMAGE_CLONER_CACHE:-~/.cache/image-cloner}/kind.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# kind's images/base/Dockerfile list, less what a one-node cluster here does not use (nfs,
# iscsi, fuse-overlayfs, curl), plus the runtime kind builds from source and we take from Debian.
PACKAGES="systemd dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz bash ca-certificates jq procps containerd runc containernetworking-plugins"
CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"
KDIR="$CACHE/kind"
mkdir -p "$KDIR"

total=$SECONDS
log() { printf 'node-image: %s\n' "$*" >&2; }
die() { printf 'node-image: error: %s\n' "$*" >&2; exit 1; }
# step NAME FUNC: runs FUNC and says how long it took.
step() {
  local t=$SECONDS
  log "$1..."
  "$2"
  log "$1: done in $((SECONDS - t))s"
}

arch=$(go env GOARCH)
rootfs_key=$(printf '%s %s %s %s' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$PACKAGES" "$arch" | sha256sum | cut -c1-12)
rootfs_tar="$KDIR/rootfs-$DEBIAN_SUITE-$rootfs_key.tar"

# The image's tag: every version and every file of the recipe.
recipe_key() {
  {
    echo "$KUBE_VERSION $KIND_VERSION $rootfs_key $arch $(coredns_version)"
    cat hack/kind/node-image.sh
    find hack/kind/node hack/kind/pause hack/kind/imagetool -type f | LC_ALL=C sort | xargs cat
  } | sha256sum | cut -c1-12
}

# kubeadm's pinned CoreDNS version for KUBE_VERSION, read from its source (no binary needed).
coredns_version() {
  local dir
  dir=$(kube_module_dir)
  sed -n 's/^[[:space:]]*CoreDNSVersion = "\(v[0-9.]*\)"/\1/p' "$dir/cmd/kubeadm/app/constants/constants.go"
}
etcd_image_version() {
  local dir minor
  dir=$(kube_module_dir)
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  sed -n "s/^[[:space:]]*${minor}: \"\(3[0-9.]*-[0-9]*\)\",/\1/p" "$dir/cmd/kubeadm/app/constants/constants.go" | head -1
}
kube_module_dir() {
  (cd "$root" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" 2>/dev/null | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}

build_rootfs() {
  if [ -s "$rootfs_tar" ]; then
    log "rootfs: cached at $rootfs_tar"
    return
  fi
  command -v debootstrap >/dev/null || {
    [ "$(id -u)" = 0 ] || die "debootstrap not found: install it (apt-get install debootstrap)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null
  }
  [ "$(id -u)" = 0 ] || die "building the rootfs needs root (debootstrap)"
  local dir
  dir=$(mktemp -d "$KDIR/rootfs.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" RETURN
  debootstrap --variant=minbase --arch="$arch" --include="$(echo "$PACKAGES" | tr ' ' ,)" \
    "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" > "$KDIR/debootstrap.log" 2>&1 ||
    { tail -20 "$KDIR/debootstrap.log" >&2; die "debootstrap failed (log: $KDIR/debootstrap.log)"; }
  # What kind's Dockerfile does after installing packages.
  (
    cd "$dir"
    rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc usr/share/man
    find lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
    rm -f lib/systemd/system/multi-user.target.wants/* etc/systemd/system/*.wants/* \
      lib/systemd/system/local-fs.target.wants/* lib/systemd/system/sockets.target.wants/*udev* \
      lib/systemd/system/sockets.target.wants/*initctl* lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" >> etc/systemd/journald.conf
    ln -sf /usr/lib/systemd/systemd sbin/init
    # kind's units and config name /usr/local/bin/containerd and /opt/cni/bin.
    ln -sf /usr/bin/containerd usr/local/bin/containerd
    ln -sf /usr/bin/ctr usr/local/bin/ctr
    mkdir -p opt/cni/bin
    for p in ptp host-local portmap loopback bridge; do cp usr/lib/cni/$p opt/cni/bin/; done
    : > etc/machine-id
  )
  tar -C "$dir" --numeric-owner -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  log "rootfs: $(du -h "$rootfs_tar" | cut -f1) at $rootfs_tar"
}

build_tools() {
  # One go build for our three small programs.
  mkdir -p "$KDIR/bin"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$KDIR/bin/" ./hack/kind/imagetool ./hack/kind/pause
}

build_coredns() {
  local v
  v=$(coredns_version)
  [ -n "$v" ] || die "could not read kubeadm's CoreDNSVersion for $KUBE_VERSION"
  coredns_bin="$KDIR/coredns-$v-$arch/coredns"
  if [ -x "$coredns_bin" ]; then
    log "coredns $v: cached at $coredns_bin"
    return
  fi
  log "coredns $v: building from github.com/coredns/coredns (first run only; minutes)"
  mkdir -p "$(dirname "$coredns_bin")"
  local gobin
  gobin=$(mktemp -d)
  GOBIN=$gobin CGO_ENABLED=0 GOFLAGS= go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$v"
  mv "$gobin/coredns" "$coredns_bin"
  rmdir "$gobin"
}

get_assets() {
  assets=$(hack/test-deps.sh 2>"$KDIR/test-deps.log" | tail -1) || { cat "$KDIR/test-deps.log" >&2; die "hack/test-deps.sh failed"; }
  for b in kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd; do
    [ -x "$assets/$b" ] || die "$assets/$b is missing: hack/test-deps.sh builds it"
  done
}

# The images kubeadm init and kind need, as docker-archive tarballs.
build_images() {
  images_dir="$work/images"
  mkdir -p "$images_dir"
  local it="$KDIR/bin/imagetool" p="linux/$arch" reg=registry.k8s.io
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    "$it" image -tag "$reg/$b:$KUBE_VERSION" -platform-binary "$p=$assets/$b" -binary-path "/usr/local/bin/$b" \
      -entrypoint "/usr/local/bin/$b" -tarball "$images_dir/$b.tar"
  done
  "$it" image -tag "$reg/kube-proxy:$KUBE_VERSION" -rootfs "$rootfs_tar" -platform-binary "$p=$assets/kube-proxy" \
    -binary-path /usr/local/bin/kube-proxy -entrypoint /usr/local/bin/kube-proxy -tarball "$images_dir/kube-proxy.tar"
  "$it" image -tag "$reg/etcd:$(etcd_image_version)" -platform-binary "$p=$assets/etcd" -binary-path /usr/local/bin/etcd \
    -entrypoint /usr/local/bin/etcd -tarball "$images_dir/etcd.tar"
  "$it" image -tag "$reg/coredns/coredns:$(coredns_version)" -platform-binary "$p=$coredns_bin" -binary-path /coredns \
    -entrypoint /coredns -tarball "$images_dir/coredns.tar"
  # kind's containerd config names pause:3.10 (sandbox_image); kubeadm lists its own pause.
  local kpause
  kpause=$(sed -n 's/^[[:space:]]*PauseVersion = "\(.*\)"/\1/p' "$(kube_module_dir)/cmd/kubeadm/app/constants/constants.go")
  for v in 3.10 $kpause; do
    "$it" image -tag "$reg/pause:$v" -platform-binary "$p=$KDIR/bin/pause" -binary-path /pause -entrypoint /pause \
      -tarball "$images_dir/pause-$v.tar"
  done
}

# The files kind's Dockerfile copies and the ones of ours, as one tree to copy onto the rootfs.
stage_files() {
  local kind_dir files="$work/files"
  kind_dir=$(cd "$root" && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$kind_dir/images/base/files" ] || die "sigs.k8s.io/kind@$KIND_VERSION has no images/base/files"
  mkdir -p "$files"
  cp -r "$kind_dir/images/base/files/." "$files/"
  chmod -R u+w "$files"
  find "$files" -type d -exec chmod 0755 {} +
  find "$files" -type f -exec chmod 0644 {} +
  chmod 0755 "$files"/usr/local/bin/* "$files"/kind/bin/*
  mkdir -p "$files/usr/bin" "$files/kind/manifests" "$files/kind/images" "$files/etc/cni/net.d" \
    "$files/etc/kubernetes/manifests"
  for b in kubelet kubeadm kubectl; do install -m 0755 "$assets/$b" "$files/usr/bin/$b"; done
  echo "$KUBE_VERSION" > "$files/kind/version"
  install -m 0644 hack/kind/node/default-cni.yaml "$files/kind/manifests/default-cni.yaml"
  install -m 0644 hack/kind/node/10-image-cloner.conflist "$files/etc/cni/net.d/10-image-cloner.conflist"
  # kubelet 1.36 refuses cgroup v1 unless told not to; kind's KubeletConfiguration does not say.
  echo 'KUBELET_EXTRA_ARGS=--runtime-cgroups=/system.slice/containerd.service --fail-cgroupv1=false' > "$files/etc/default/kubelet"
  # containerd: no oom_score_adj below its own (needs CAP_SYS_RESOURCE), hosts.toml under
  # certs.d (containerd 1.6 reads them only when config_path is set).
  local cfg="$files/etc/containerd/config.toml"
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$cfg"
  grep -q 'restrict_oom_score_adj = true' "$cfg" || die "kind's containerd config changed: no restrict_oom_score_adj to set"
  printf '\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n' >> "$cfg"
  cp "$images_dir"/*.tar "$files/kind/images/"
}

# Copy the files onto the rootfs in a privileged container, redo the rest of kind's Dockerfile,
# import the images into containerd's content store (/var/lib/containerd, which kind's /var
# volume copies into every node), and commit.
assemble() {
  local base="image-cloner/kind-rootfs:$rootfs_key" c="image-cloner-node-build-$$"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    docker import "$rootfs_tar" "$base" >/dev/null
  fi
  docker rm -f "$c" >/dev/null 2>&1 || true
  build_container=$c  # the EXIT trap removes it, on failure too
  docker run -d --privileged --name "$c" --entrypoint /bin/sleep "$base" infinity >/dev/null
  tar -C "$work/files" --owner=0 --group=0 -cf - . | docker cp - "$c:/"
  docker exec -i "$c" bash -euo pipefail <<'SH'
systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
systemctl mask systemd-binfmt.service >/dev/null 2>&1
ctr oci spec \
  | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
  | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json
mkdir -p /run/containerd
containerd --config /etc/containerd/config.toml >/tmp/containerd.log 2>&1 &
for i in $(seq 1 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
for t in /kind/images/*.tar; do
  ctr -n k8s.io images import --all-platforms --no-unpack "$t" >/dev/null
done
ctr -n k8s.io images ls -q | sort
kill %1; wait || true
rm -rf /kind/images /tmp/containerd.log /run/containerd/*
SH
  docker stop -t 1 "$c" >/dev/null
  docker commit "$c" "$tag-contents" >/dev/null
  # docker commit --change knows no STOPSIGNAL: the image's metadata comes from a Dockerfile
  # (the classic builder, which uses the local image and pulls nothing).
  local ctx="$work/metadata"
  mkdir -p "$ctx"
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $tag-contents
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null 2>"$work/build.log" ||
    { cat "$work/build.log" >&2; die "docker build of the image's metadata failed"; }
  docker rmi "$tag-contents" >/dev/null
}

command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine answers: run hack/kind/docker.sh (make e2e-kind does)"
command -v go >/dev/null || die "go is not on PATH"

if [ "${1:-}" = prepare ]; then
  # The parts that need no Kubernetes binary (hack/kind/node-image.sh prepare).
  work=$(mktemp -d "$KDIR/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  step "rootfs (debootstrap $DEBIAN_SUITE)" build_rootfs
  step "tools (imagetool, pause)" build_tools
  step "coredns" build_coredns
  exit 0
fi
key=$(recipe_key)
tag="image-cloner/kind-node:$KUBE_VERSION-$key"
if docker image inspect "$tag" >/dev/null 2>&1; then
  log "$tag: cached (recipe unchanged), ${SECONDS}s"
  echo "$tag"
  exit 0
fi
log "building $tag (kind $KIND_VERSION, Kubernetes $KUBE_VERSION, Debian $DEBIAN_SUITE, $arch)"
work=$(mktemp -d "$KDIR/build.XXXXXX")
build_container=
trap 'rm -rf "$work"; [ -z "$build_container" ] || docker rm -f "$build_container" >/dev/null 2>&1 || true' EXIT
step "rootfs (debootstrap $DEBIAN_SUITE)" build_rootfs
step "tools (imagetool, pause)" build_tools
step "coredns" build_coredns
step "Kubernetes binaries (hack/test-deps.sh)" get_assets
step "control-plane images" build_images
step "kind's files and ours" stage_files
step "assembling and preloading containerd" assemble
log "$tag: built in $((SECONDS - total))s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$tag"
