#!/usr/bin/env bash
# The shared Gateway API acceptance runner (../shared/conformance/run.ts) with the gateway running
# in the container image instead of `bun src/main.ts`:
#
#   bash docker/conformance.sh [IMAGE] [TestName ...]      # default image localhost/portico:dev
#
# Each case starts `podman run` of the image the way docker/deploy runs it (uid 65532, read-only
# root filesystem, no capabilities, no-new-privileges) on the host network, so the runner's echo
# servers on 127.0.0.1 are the backends; the case's config folder is mounted read-only at the same
# path, and the runner's atomic renames in it are hot reloads inside the container.
# The runner is looked for in $CONFORMANCE_DIR, ../shared/conformance, /work/shared/conformance.
# Exit code: the runner's (1 when a case fails), 3 when the runner is not on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-localhost/portico:dev}
shift || true
podman image exists "$IMAGE" || { echo "no image $IMAGE (build it: bash docker/build-image.sh $IMAGE)" >&2; exit 2; }

runner=
for dir in "${CONFORMANCE_DIR:-}" ../shared/conformance /work/shared/conformance; do
  if [ -n "$dir" ] && [ -f "$dir/run.ts" ]; then runner=$dir/run.ts; break; fi
done
if [ -z "$runner" ]; then
  echo "SKIPPED conformance in the container: no conformance runner (set CONFORMANCE_DIR)" >&2
  exit 3
fi

label=portico-conformance=$$
cleanup() { podman ps -aq --filter "label=$label" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true; }
trap cleanup EXIT

# The runner starts this under `sh -c` with CONFIG_DIR, ADMIN_PORT and GATEWAY_CONTROLLER_NAME set,
# and stops it with SIGTERM to the process group: podman (exec'd, so it is that process) passes
# the signal on to the gateway (--sig-proxy), which drains and exits; --rm removes the container.
export GATEWAY_CMD="chmod a+rx \"\$CONFIG_DIR\" && exec podman run --rm --label $label --network host \
 --user 65532:65532 --read-only --read-only-tmpfs=false --cap-drop ALL --security-opt no-new-privileges \
 -e GATEWAY_CONTROLLER_NAME -v \"\$CONFIG_DIR:\$CONFIG_DIR:ro\" $IMAGE \
 --config-dir \"\$CONFIG_DIR\" --admin-port \"\$ADMIN_PORT\" --drain-timeout 2 --log-level warn --access-log off"
# Listener and admin ports are BASE_PORT + slot * 250 + ...: without a BASE_PORT, take a window
# of CONCURRENCY * 250 ports below the ephemeral range where nothing listens now (machines shared
# by several CI runs).
if [ -z "${BASE_PORT:-}" ]; then
  BASE_PORT=$(npx bun -e '
    import { createServer } from "node:net"
    const span = 250 * Number(process.env.CONCURRENCY || 2)
    const free = (port: number) => new Promise<boolean>((resolve) => { const s = createServer(); s.once("error", () => resolve(false)); s.listen(port, "127.0.0.1", () => s.close(() => resolve(true))) })
    for (let attempt = 0; attempt < 20; attempt++) {
      const base = 20000 + 500 * Math.floor(Math.random() * ((32000 - 20000 - span) / 500))
      let ok = true
      for (let p = base; p < base + span && ok; p++) ok = await free(p)
      if (ok) { console.log(base); process.exit(0) }
    }
    console.log(20000)')
  export BASE_PORT
fi
# a container start costs ~1 s more than a process start on a loaded machine
export READY_TIMEOUT=${READY_TIMEOUT:-40}
echo "conformance runner $runner, gateway in container $IMAGE, BASE_PORT $BASE_PORT" >&2
# The runner imports yaml from its own node_modules; run it with the project's Bun.
npx bun "$runner" "$@"
