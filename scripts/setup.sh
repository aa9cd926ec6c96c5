#!/usr/bin/env bash
# Installs everything vipd needs to build, run its demo and run its tests, on Debian 12 as root.
# Idempotent: skips what is already present. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

BUN_VERSION=1.4.5
DEBS=(clang llvm libbpf-dev libbpf1 bpftool iproute2 ethtool arping ndisc6 tcpdump bird2 frr
  netsniff-ng chromium procps psmisc iputils-ping curl openssl gobgpd
  debootstrap qemu-system-x86 qemu-utils ovmf mtools dosfstools fdisk e2fsprogs zstd prometheus
  rauc squashfs-tools
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev)

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The frr package starts its daemons through systemd when it can; tests run their own.
fi
# prometheus (server and promtool): the tests start their own, on loopback with their own data
# directory; the package's system-wide service is not wanted.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/prometheus ]]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

if ! command -v bun >/dev/null 2>&1 || [[ "$(bun --version 2>/dev/null)" != "$BUN_VERSION" ]]; then
  log "installing bun@$BUN_VERSION from the npm registry"
  npm install -g --no-fund --no-audit "bun@$BUN_VERSION" >/dev/null
  if ! bun --version >/dev/null 2>&1; then
    # npm >= 11 may skip install scripts; the package still ships the binary.
    npm rebuild -g bun >/dev/null 2>&1 || true
  fi
fi
log "bun $(bun --version)"

if [[ ! -d node_modules ]] || [[ bun.lock -nt node_modules ]]; then
  log "installing npm dependencies"
  bun install --frozen-lockfile >/dev/null
  touch node_modules
fi

# Build the XDP object when its source exists (the data path issue adds it).
if [[ -f src/xdp/arp_responder.c ]]; then
  bash scripts/build-xdp.sh
fi
