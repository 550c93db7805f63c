#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12, for real: builds a minimal
# Debian 12 (bookworm) root with debootstrap, copies a clean clone of this
# repository's HEAD (and ../shared, which the layout needs) into it, and
# inside it (chroot) runs
#   1. `make run` until the server answers a chat completion, then stops it;
#   2. `make test` (every suite), then checks `git status --porcelain` is
#      empty;
#   3. scripts/install-deps.sh as a non-root user through sudo, after one
#      package was removed (the sudo path; steps 1-2 run as root, no sudo).
# The root has only Debian's minbase plus `make` (a newcomer needs make to
# type `make`); everything else must come from the two commands.
#
#   usage: sudo scripts/fresh-machine-check.sh [ROOT_DIR]
#     ROOT_DIR  where the Debian root goes (default /var/tmp/spindle-fresh;
#               reused if it holds a finished root, see FRESH_REUSE)
#   environment:
#     FRESH_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#     FRESH_REUSE=1  keep an existing root's packages (default: a new root)
#     FRESH_JOBS     make -j inside (default: nproc)
#     FRESH_SKIP_TEST=1  stop after `make run` (quick check of the setup)
# Needs root (debootstrap, mount, chroot) and the Debian mirror and npm
# registry over the network; takes as long as `make test` plus a few minutes.
# Everything it mounts is unmounted on exit. Prints PASS or FAIL per step.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
root="${1:-/var/tmp/spindle-fresh}"
mirror="${FRESH_MIRROR:-http://deb.debian.org/debian}"
jobs="${FRESH_JOBS:-$(nproc)}"

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi
log() { echo "fresh-machine-check: $*" >&2; }

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
mount_in() { # TYPE-or---bind SOURCE TARGET
  mkdir -p "$3"
  if [ "$1" = --bind ]; then mount --bind "$2" "$3"; else mount -t "$1" "$2" "$3"; fi
  mounted+=("$3")
}

# ---- the Debian root --------------------------------------------------------
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi
# never delete through a mount left by an earlier, killed run
if grep -q " $root/" /proc/mounts; then
  log "$root has mounts from an earlier run; unmount them first"
  exit 2
fi
if [ "${FRESH_REUSE:-0}" = 1 ] && [ -x "$root/usr/bin/make" ]; then
  log "reusing the Debian root in $root"
else
  rm -rf "$root"
  log "debootstrap bookworm (minbase + make) into $root from $mirror"
  t0=$SECONDS
  debootstrap --variant=minbase --include=make bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
    { tail -20 "$root.debootstrap.log"; exit 1; }
  log "debootstrap: $((SECONDS - t0)) s"
fi
# The host's network set-up comes along: its resolver, its proxy settings
# (below) and, behind a TLS-intercepting proxy, the CA certificates it added
# itself (/usr/local/share/ca-certificates: update-ca-certificates puts them
# into the root's bundle when install-deps installs ca-certificates;
# NODE_EXTRA_CA_CERTS, if the host sets it, makes npm use that bundle). A
# machine on the open internet has none of these.
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  log "host CA certificates added: $(cd /usr/local/share/ca-certificates && echo *.crt)"
fi

# ---- a clean clone of HEAD, and ../shared ------------------------------------
head="$(git -C "$here" rev-parse HEAD)"
[ -z "$(git -C "$here" status --porcelain)" ] ||
  log "note: uncommitted changes in $here are not part of the check (HEAD $head is)"
rm -rf "$root/src"
mkdir -p "$root/src"
git clone -q --no-hardlinks --no-checkout "$here" "$root/src/spindle"
git -C "$root/src/spindle" checkout -q --detach "$head"
cp -rL "$here/../shared" "$root/src/shared"
log "clone of $head in /src/spindle, shared folder in /src/shared"

mount_in proc proc "$root/proc"
mount_in sysfs sys "$root/sys"
mount_in --bind /dev "$root/dev"
mount_in devpts devpts "$root/dev/pts"
mount_in tmpfs tmpfs "$root/dev/shm"
mount_in tmpfs tmpfs "$root/tmp"

# A login-like environment: nothing from this shell but the network settings.
chroot_cmd=(chroot "$root" env -i HOME=/root LANG=C.UTF-8 TERM=dumb
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY NODE_EXTRA_CA_CERTS; do
  if [ -n "${!v:-}" ]; then chroot_cmd+=("$v=${!v}"); fi
done
in_root() { # SHELL COMMAND...: run by bash inside the root, in the clone
  "${chroot_cmd[@]}" bash -c "cd /src/spindle && $*"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# One chat completion over a raw socket (no client tools needed on the host).
ask() { # PORT -> prints the HTTP response
  local body='{"model":"any","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16}'
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "${#body}" "$body" >&3
  timeout 60 cat <&3
  exec 3<&-
}

status=0
# ---- 1. make run ---------------------------------------------------------------
port=8000 args=""
if ! port_free 8000; then # another server on this host: same command, other port
  port=18000
  while ! port_free $port; do port=$((port + 1)); done
  args="ARGS='--port $port'"
fi
log "step 1: make run $args (log $root.run.log)"
t0=$SECONDS
# its own session: the whole group (make, spindle) is stopped by its id
setsid "${chroot_cmd[@]}" bash -c "cd /src/spindle && make run JOBS=$jobs $args" \
  >"$root.run.log" 2>&1 &
run_pid=$!
answer="" t_listen=""
while kill -0 $run_pid 2>/dev/null && [ $((SECONDS - t0)) -lt 1800 ]; do
  if ! port_free $port; then
    : "${t_listen:=$SECONDS}"
    answer="$(ask $port || true)"
    # the model may still be loading: asked again for up to a minute
    [[ "$answer" == "HTTP/1.1 200"* || $((SECONDS - t_listen)) -gt 60 ]] && break
  fi
  sleep 2
done
kill -TERM -- -$run_pid 2>/dev/null || true
wait $run_pid 2>/dev/null || true
tail -5 "$root.run.log"
if [[ "$answer" == "HTTP/1.1 200"* && "$answer" == *'"choices"'* ]]; then
  log "step 1 PASS: make run answered a chat completion after $((SECONDS - t0)) s:"
  printf '%s\n' "$answer" | tail -1 | cut -c1-400
else
  log "step 1 FAIL: no answer (see $root.run.log)"
  printf '%s\n' "$answer" | head -20
  status=1
fi
[ "${FRESH_SKIP_TEST:-0}" = 1 ] && exit $status

# ---- 2. make test --------------------------------------------------------------
log "step 2: make test (log $root.test.log)"
t0=$SECONDS
# the suites' own summaries must be there: a make that ran nothing passes too
if in_root "make test JOBS=$jobs" >"$root.test.log" 2>&1 &&
  grep -q "clang-format: ok" "$root.test.log" &&
  grep -q "100% tests passed" "$root.test.log" &&
  grep -Eq "^run.sh: [0-9]+ targets" "$root.test.log"; then
  log "step 2 PASS: make test passed in $((SECONDS - t0)) s"
else
  log "step 2 FAIL: make test failed after $((SECONDS - t0)) s; its last lines:"
  tail -40 "$root.test.log"
  status=1
fi
grep -E "clang-format: ok|tests passed|tests failed|^# (pass|fail)|targets, |Skipped" \
  "$root.test.log" || true
dirty="$(in_root "git status --porcelain")"
if [ -z "$dirty" ]; then
  log "step 2 PASS: git status --porcelain is empty after make test"
else
  log "step 2 FAIL: make test left files in the repository:"
  printf '%s\n' "$dirty"
  status=1
fi

# ---- 3. install-deps.sh through sudo ----------------------------------------------
log "step 3: scripts/install-deps.sh as a non-root user with sudo"
in_root "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null &&
  (id newcomer >/dev/null 2>&1 || useradd -m newcomer) &&
  echo 'newcomer ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/newcomer &&
  apt-get remove -y -qq libxxhash-dev >/dev/null" || status=1
if in_root "su newcomer -c 'bash scripts/install-deps.sh'" &&
  in_root "dpkg-query -W -f='\${Status}' libxxhash-dev | grep -q 'install ok installed'"; then
  log "step 3 PASS: the removed package came back through sudo"
else
  log "step 3 FAIL"
  status=1
fi
[ $status -eq 0 ] && log "PASS" || log "FAIL"
exit $status
