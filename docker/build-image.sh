#!/usr/bin/env bash
# Builds the Portico image from docker/Dockerfile with podman, on a machine that cannot pull from
# any container registry (CI, these dev machines): the two base images the Dockerfile names are
# replaced by local stand-ins built here, then the real Dockerfile is built unchanged.
#
#   bash docker/build-image.sh [TAG]          # default tag: localhost/portico:dev
#
# Stand-ins (cached between runs in $PORTICO_IMAGE_CACHE and in podman's own image store):
#   localhost/portico-debian:bookworm  Debian bookworm minbase root filesystem (debootstrap, from the
#                                      mirror apt already uses), imported with `podman import`
#   localhost/oven-bun:<version>       that base + the Bun binary of the pinned npm package `bun`
#   localhost/distroless-cc:nonroot    `buildah from scratch` + the glibc libraries the compiled
#                                      binary needs, passwd/group with nonroot = 65532, a CA bundle
# With a registry, `docker build -f docker/Dockerfile .` uses the public bases instead.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-localhost/portico:dev}
CACHE=${PORTICO_IMAGE_CACHE:-/var/cache/portico-image}
BUN_VERSION=$(node -p 'require("./package.json").devDependencies.bun' 2>/dev/null || sed -n 's/.*"bun": "\([0-9.]*\)".*/\1/p' package.json | head -1)
VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
BASE_IMAGE=localhost/portico-debian:bookworm
BUN_IMAGE=localhost/oven-bun:$BUN_VERSION
RUNTIME_IMAGE=localhost/distroless-cc:nonroot
log() { printf '[build-image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- tools ------------------------------------------------------------------------------------
need=()
for tool in podman buildah runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- podman configuration (idempotent) ---------------------------------------------------------
# Measured on these machines: crun refuses the hybrid cgroup layout, and root cannot raise
# RLIMIT_NOFILE past 20000, so podman's default ulimits (1048576) make every container fail to start.
CONF_DIR=/etc/containers/containers.conf.d
CONF=$CONF_DIR/50-portico.conf
want='# written by portico docker/build-image.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
if [ "$(cat "$CONF" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$CONF_DIR" && printf '%s\n' "$want" >"$CONF"
  log "wrote $CONF"
fi

mkdir -p "$CACHE"
have_image() { podman image exists "$1"; }

# --- stand-in 1: Debian bookworm minbase -------------------------------------------------------
# The mirror is the one apt uses (deb822 "URIs:" or one-line "deb URL bookworm ..."), security excluded.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |$|\n)/ && !/security/ { if (match($0, /URIs: *[^ \n]+/)) { u=substr($0, RSTART, RLENGTH); sub(/URIs: */, "", u); print u; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) { if ($(i+1)=="bookworm") { print $i; exit } } }' "$f"
  done
}
if ! have_image "$BASE_IMAGE"; then
  tarball=$CACHE/bookworm-minbase.tar
  if [ ! -s "$tarball" ]; then
    mirror=$(debian_mirror | head -1)
    mirror=${mirror:-http://deb.debian.org/debian}
    log "debootstrap --variant=minbase bookworm from $mirror"
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  log "podman import $tarball -> $BASE_IMAGE"
  podman import -q --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
fi

# --- stand-in 2: the Bun build image -----------------------------------------------------------
# Bun's own binary from the npm package the project pins (node_modules, or fetched with npm pack).
bun_binary() {
  local b=node_modules/@oven/bun-linux-x64/bin/bun
  if [ -x "$b" ] && [ "$("$b" --version)" = "$BUN_VERSION" ]; then echo "$PWD/$b"; return; fi
  local dir=$CACHE/bun-$BUN_VERSION
  if [ ! -x "$dir/package/bin/bun" ]; then
    mkdir -p "$dir" && (cd "$dir" && npm pack -q "@oven/bun-linux-x64@$BUN_VERSION" >/dev/null && tar xzf oven-bun-linux-x64-*.tgz)
  fi
  echo "$dir/package/bin/bun"
}
if ! have_image "$BUN_IMAGE"; then
  log "building $BUN_IMAGE"
  ctr=$(buildah from "$BASE_IMAGE")
  buildah copy -q --chmod 0755 "$ctr" "$(bun_binary)" /usr/local/bin/bun >/dev/null
  buildah run "$ctr" -- ln -s bun /usr/local/bin/bunx
  # The build stage downloads npm packages; behind a TLS-inspecting proxy they need the host's CA
  # bundle (the public oven/bun image relies on Bun's built-in roots instead).
  buildah run "$ctr" -- mkdir -p /etc/ssl/certs
  buildah copy -q "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
  buildah config --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --workingdir /home/bun/app \
    --cmd '["/usr/local/bin/bun"]' "$ctr"
  buildah commit -q "$ctr" "$BUN_IMAGE" >/dev/null
  buildah rm "$ctr" >/dev/null
fi

# --- stand-in 3: the distroless-like runtime ---------------------------------------------------
# Only what distroless/cc gives the compiled binary: glibc (the libraries `ldd` names for Bun,
# taken from the same Debian base), /etc/passwd and /etc/group with nonroot = 65532, /tmp, a CA
# bundle. No shell, no package manager.
if ! have_image "$RUNTIME_IMAGE"; then
  log "building $RUNTIME_IMAGE"
  src=$(buildah from "$BASE_IMAGE")
  srcmnt=$(buildah mount "$src")
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  mkdir -p "$mnt"/{etc/ssl/certs,tmp,home/nonroot,lib/x86_64-linux-gnu,lib64,usr/local/bin}
  chmod 1777 "$mnt/tmp"
  chown 65532:65532 "$mnt/home/nonroot"
  for lib in $(ldd "$(bun_binary)" | grep -o '/lib[^ ]*'); do
    cp -L "$srcmnt$lib" "$mnt$lib"
  done
  cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$mnt/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$mnt/etc/group"
  printf 'hosts: files dns\n' >"$mnt/etc/nsswitch.conf"
  buildah umount "$ctr" >/dev/null && buildah umount "$src" >/dev/null
  buildah config --user 65532:65532 --workingdir /home/nonroot --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$ctr"
  buildah commit -q "$ctr" "$RUNTIME_IMAGE" >/dev/null
  buildah rm "$ctr" "$src" >/dev/null
fi

# --- the real Dockerfile -----------------------------------------------------------------------
log "podman build docker/Dockerfile -> $TAG ($VERSION, $REVISION)"
start=$(date +%s.%N)
# OCI format (podman's default) has no HEALTHCHECK field, so `HEALTHCHECK NONE` is dropped with a
# warning per stage, which is what it means anyway; the docker format would keep it, and podman then
# tries to manage a systemd health timer for the container.
podman build -q --network host -f docker/Dockerfile \
  --ignorefile docker/Dockerfile.dockerignore \
  --build-arg BUN_IMAGE="$BUN_IMAGE" --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
  -t "$TAG" . 2> >(grep -v 'HEALTHCHECK is not supported' >&2) >/dev/null
end=$(date +%s.%N)
size=$(podman image inspect --format '{{.Size}}' "$TAG")
log "built $TAG in $(awk "BEGIN { printf \"%.1f\", $end - $start }") s, $((size / 1000000)) MB"
# Untagged images are earlier builds and their build stages (~480 MB each, Bun and node_modules):
# keep the last hour's as layer cache for rebuilds, drop older ones so repeated runs do not fill the disk.
podman image prune -f --filter until=1h >/dev/null 2>&1 || true
