#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Prepares a Debian 12 host (as root) to run and test riskguard-agent. Idempotent: every step
# checks before it acts, so a second run takes seconds. Called first by `make run` and `make test`.
#
#   scripts/setup-host.sh            everything (apt, kernel mounts, venv, dockerd, test image)
#   SETUP_SKIP_DOCKER=1 ...          do not start dockerd / build the test images
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=/usr/bin/python3           # Debian's Python: python3-bpfcc & co. are built for it
log() { printf 'setup-host: %s\n' "$*" >&2; }

# Debian-only bindings (bcc, libauparse, libnftables, libselinux) are exposed one by one through
# a .pth file rather than with --system-site-packages, so nothing else leaks in from Debian.
link_debian_bindings() {
  local venv=$1 site bind src m
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  bind="$venv/debian-bindings"
  mkdir -p "$bind"
  for m in bcc audit.py _audit auparse nftables selinux _selinux; do
    for src in /usr/lib/python3/dist-packages/$m*; do
      if [ -e "$src" ]; then ln -sfn "$src" "$bind/$(basename "$src")"; fi
    done
  done
  echo "$bind" > "$site/riskguard-debian-bindings.pth"
}
if [ "${1:-}" = "--bindings-only" ]; then
  link_debian_bindings "${2:?usage: setup-host.sh --bindings-only VENV}"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "must run as root (it installs packages, mounts tracefs and starts dockerd)"; exit 1
fi

# 1. Debian packages ------------------------------------------------------------------------
APT_PACKAGES=(
  python3 python3-venv python3-dev gcc libc6-dev make git   # gcc: test helpers in C (trigger programs)
  docker.io iptables iproute2                  # runtime discovery, test containers
  bpfcc-tools python3-bpfcc linux-headers-amd64 # eBPF probes (bcc) + headers bcc compiles with
  bpftrace                                      # benchmarks compare our probes with a bpftrace one-liner
  strace                                        # scripts/record_syscall_traces.py records the syscall fixtures
  auditd python3-audit                          # audit source (libauparse bindings)
  tcpdump                                       # rolling pcap evidence
  nftables python3-nftables                     # quarantine and least-privilege rules
  containernetworking-plugins                   # CNI bridge/host-local/firewall/bandwidth
  busybox-static                                # the local test image, built without a registry
  debootstrap                                   # the local Debian test image (e2e benign corpus)
  secilc checkpolicy python3-selinux            # SELinux CIL policies: generate and compile-check
  systemd                                       # systemd-analyze verify for the unit file
  procps psmisc ca-certificates
  prometheus                                    # tests scrape the agent with a real Prometheus + promtool
)
# kubectl (tests dry-run config/kubernetes/): Debian's kubernetes-client, unless a kubectl is
# already installed (another package owning /usr/bin/kubectl would make dpkg refuse it).
command -v kubectl >/dev/null || APT_PACKAGES+=(kubernetes-client)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Kernel headers for bcc -----------------------------------------------------------------
# The VM kernel ships no headers. Our probes use tracepoints and BPF helpers only, whose layouts
# bcc reads from tracefs, so Debian's generic headers are enough for bcc's clang to compile.
# bcc needs both build/ (the arch headers and generated config) and source/ (include/linux/
# kconfig.h and the rest of the common tree, which Debian ships in linux-headers-*-common).
KDIR="/lib/modules/$(uname -r)"
if [ ! -e "$KDIR/build" ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$hdr" ]; then
    mkdir -p "$KDIR"
    ln -sfn "$hdr" "$KDIR/build"
    log "linked $KDIR/build -> $hdr"
  fi
fi
if [ ! -e "$KDIR/source" ]; then
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$common" ]; then
    mkdir -p "$KDIR"
    ln -sfn "$common" "$KDIR/source"
    log "linked $KDIR/source -> $common"
  fi
fi

# 3. tracefs / debugfs ----------------------------------------------------------------------
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || log "tracefs mount failed"
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug || log "debugfs mount failed"

# 4. The venv -------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
link_debian_bindings "$VENV"

# compat mode: a plain .pth entry for the checkout, so sub-packages added later are importable
# without reinstalling (setuptools' default editable finder is a static map).
PIP_INSTALL=(install -q -e ".[dev]" --config-settings editable_mode=compat)
stamp="$VENV/.riskguard-installed"
want=$( { cat pyproject.toml; echo "${PIP_INSTALL[*]}"; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the project into $VENV (editable, with dev tools)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" "${PIP_INSTALL[@]}"
  echo "$want" > "$stamp"
fi

# 5. auditd ---------------------------------------------------------------------------------
# The agent listens on the audit multicast group and never needs auditd, but an operator's host
# usually runs it, and tests check that we coexist with it.
if ! pgrep -x auditd >/dev/null; then
  auditd >/dev/null 2>&1 || log "auditd did not start (the audit source still works as a listener)"
fi

# 6. dockerd and the local test image -------------------------------------------------------
if [ "${SETUP_SKIP_DOCKER:-0}" != 1 ]; then
  if ! timeout 5 docker info >/dev/null 2>&1; then
    if pgrep -x dockerd >/dev/null; then
      log "dockerd is running but not answering yet"
    else
      log "starting dockerd (nothing manages it on this host)"
      mkdir -p /var/log
      setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    fi
    for _ in $(seq 1 60); do timeout 5 docker info >/dev/null 2>&1 && break; sleep 0.5; done
    timeout 5 docker info >/dev/null 2>&1 || { log "dockerd did not come up: see /var/log/dockerd.log"; exit 1; }
  fi
  if ! docker image inspect riskguard-test/busybox >/dev/null 2>&1; then
    log "building riskguard-test/busybox from busybox-static (no registry)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www,var/log,proc,sys,dev,run}
    chmod 1777 "$tmp/tmp"
    cp /bin/busybox "$tmp/bin/busybox"
    for a in $(/bin/busybox --list); do [ -e "$tmp/bin/$a" ] || ln -s busybox "$tmp/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nwww-data:x:33:33:www:/var/www:/bin/false\n' > "$tmp/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\nwww-data:x:33:\n' > "$tmp/etc/group"
    printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' > "$tmp/etc/shadow"
    chmod 640 "$tmp/etc/shadow"
    printf 'NAME="BusyBox"\nID=busybox\nVERSION_ID=%s\n' "$(/bin/busybox | head -1 | awk '{print $2}' | tr -d v)" > "$tmp/etc/os-release"
    echo '<html><body>riskguard test</body></html>' > "$tmp/var/www/index.html"
    tar -C "$tmp" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' - riskguard-test/busybox >/dev/null
    rm -rf "$tmp"; trap - EXIT
  fi
  # A minimal Debian 12 (python3, apt, curl, netcat-openbsd) for the e2e benign corpus: the
  # Python web app, `apt-get install ./x.deb` at start, a client of the Docker socket. The
  # rootfs tarball is cached, so a removed image comes back in seconds without the mirror.
  if ! docker image inspect riskguard-test/debian >/dev/null 2>&1; then
    cache=/var/cache/riskguard
    rootfs="$cache/debian-bookworm-minbase.tar"
    if [ ! -s "$rootfs" ]; then
      log "building a Debian 12 rootfs with debootstrap (about a minute, needs deb.debian.org)"
      mkdir -p "$cache"
      tmp=$(mktemp -d "$cache/rootfs.XXXXXX")
      trap 'rm -rf "$tmp"' EXIT
      debootstrap --variant=minbase --include=python3,curl,netcat-openbsd \
        bookworm "$tmp" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
        || { log "debootstrap failed: see $cache/debootstrap.log"; exit 1; }
      rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
      tar -C "$tmp" -c . > "$rootfs.part" && mv "$rootfs.part" "$rootfs"
      rm -rf "$tmp"; trap - EXIT
    fi
    log "importing riskguard-test/debian from $rootfs"
    docker import -c 'CMD ["/bin/bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      "$rootfs" riskguard-test/debian >/dev/null
  fi
fi
log "ready"
