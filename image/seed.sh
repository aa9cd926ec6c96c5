#!/usr/bin/env bash
# Writes a site's configuration onto the seed partition (VIPDSEED) of a vipd edge-node image or
# of a disk flashed with it — no mounting, no loop devices (mtools).
#
#   bash image/seed.sh TARGET SITE_DIR [NETWORK_DIR]
#
# TARGET: the image file (vipd-edge.img), a flashed disk (/dev/sdX) or its seed partition
# (/dev/sdX3). SITE_DIR: manifests (*.yaml, *.yml, *.json) — MetalLB objects, Services and one
# NodeSettings; they replace what the seed held. NETWORK_DIR: optional systemd-networkd files
# (*.network, *.netdev, *.link). Validates SITE_DIR with vipd first when bun is available.
set -euo pipefail
target=${1:?usage: seed.sh TARGET SITE_DIR [NETWORK_DIR]}
site=${2:?usage: seed.sh TARGET SITE_DIR [NETWORK_DIR]}
net=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
die() {
  echo "seed.sh: $*" >&2
  exit 1
}
command -v mcopy >/dev/null || die "mtools is missing (apt-get install mtools)"
[[ -d $site ]] || die "$site is not a directory"
shopt -s nullglob
manifests=("$site"/*.yaml "$site"/*.yml "$site"/*.json)
((${#manifests[@]})) || die "$site holds no manifests"
if command -v bun >/dev/null && [[ -f $here/src/main.ts ]]; then
  bun "$here/src/main.ts" validate "${manifests[@]}" >/dev/null || {
    bun "$here/src/main.ts" validate "${manifests[@]}" >&2 || true
    die "$site is not a valid configuration; nothing written"
  }
fi
if grep -lE '^[[:space:]]*token:' "${manifests[@]}" >/dev/null 2>&1; then
  die "a manifest has a 'token:' field: put only sha256 hashes (tokens[].hash) on the seed"
fi

# The seed partition as an mtools image spec: a partition device, or disk/image@@byte-offset.
if [[ -b $target ]] && [[ $(lsblk -no LABEL "$target" 2>/dev/null | head -1) == VIPDSEED ]]; then
  spec=$target
else
  line=$(sfdisk -d "$target" | grep -E 'name="vipd-seed"') || die "$target has no vipd-seed partition"
  start=$(sed -E 's/.*start= *([0-9]+).*/\1/' <<<"$line")
  sector=$(sfdisk -d "$target" | sed -nE 's/^sector-size: *([0-9]+)/\1/p')
  spec="$target@@$((start * ${sector:-512}))"
fi
export MTOOLS_SKIP_CHECK=1
mdeltree -i "$spec" ::/vipd >/dev/null 2>&1 || true
mmd -i "$spec" ::/vipd
mcopy -i "$spec" "${manifests[@]}" ::/vipd/
if [[ -n $net ]]; then
  mdeltree -i "$spec" ::/network >/dev/null 2>&1 || true
  mmd -i "$spec" ::/network
  files=("$net"/*.network "$net"/*.netdev "$net"/*.link)
  ((${#files[@]} == 0)) || mcopy -i "$spec" "${files[@]}" ::/network/
fi
sync
echo "seed.sh: wrote ${#manifests[@]} manifest(s) to the seed partition of $target" >&2
