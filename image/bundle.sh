#!/usr/bin/env bash
# Makes a signed RAUC update bundle (.raucb) for the vipd edge-node image from a root slot's
# filesystem image (build/image/vipd-rootfs.ext4, made by image/build.sh). Variants — another
# version string, a file replaced — are made from the same filesystem image without rebuilding
# anything (debugfs edits a copy; nothing is mounted).
#
#   bash image/bundle.sh ROOTFS.ext4 OUT.raucb [--version V] [--file /GUEST/PATH=HOST_FILE]...
#
# --version V   the bundle's version, also written into the root's /usr/lib/vipd/build-info.json
#               ("image"), which is what GET /api/v1/system shows once the slot is booted
# --file P=F    replaces (or adds) file P in the root with the host file F (mode 0644, or 0755
#               when F is executable)
# Signing: VIPD_UPDATE_CERT and VIPD_UPDATE_KEY (PEM); default: the development pair that
# image/build.sh made in /var/cache/vipd-image/dev-keys. VIPD_UPDATE_KEYRING, when set, is used to
# check the signature right after signing.
set -euo pipefail
cd "$(dirname "$0")/.."
die() {
  echo "bundle.sh: $*" >&2
  exit 1
}
src=${1:?usage: bundle.sh ROOTFS.ext4 OUT.raucb [--version V] [--file /PATH=HOST_FILE]...}
out=${2:?usage: bundle.sh ROOTFS.ext4 OUT.raucb [--version V] [--file /PATH=HOST_FILE]...}
shift 2
version=
files=()
while (($#)); do
  case $1 in
  --version) version=${2:?--version needs a value}; shift 2 ;;
  --file) files+=("${2:?--file needs /PATH=HOST_FILE}"); shift 2 ;;
  *) die "unknown argument $1" ;;
  esac
done
CACHE=${VIPD_IMAGE_CACHE:-/var/cache/vipd-image}
cert=${VIPD_UPDATE_CERT:-$CACHE/dev-keys/dev.cert.pem}
key=${VIPD_UPDATE_KEY:-$CACHE/dev-keys/dev.key.pem}
[[ -f $src ]] || die "$src: no such root filesystem image"
[[ -f $cert && -f $key ]] || die "signing certificate/key missing ($cert, $key): run image/build.sh once or set VIPD_UPDATE_CERT/KEY"
for t in rauc mksquashfs debugfs; do command -v $t >/dev/null || die "missing $t: run scripts/setup.sh"; done

work=$(mktemp -d /var/tmp/vipd-bundle.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
cp --sparse=always "$src" "$work/content/rootfs.ext4"
fs=$work/content/rootfs.ext4
dbg() { # debugfs -w commands on the copy; fails on any error message
  local r
  r=$(debugfs -w -f - "$fs" 2>&1 >/dev/null <<<"$1") || die "debugfs: $r"
  if grep -qiE 'not found|error|could not|cannot' <<<"$r"; then die "debugfs: $r"; fi
}
put() { # guest path, host file
  local dir=${1%/*} name=${1##*/} mode=0100644
  [[ -x $2 ]] && mode=0100755
  debugfs -w -R "rm $1" "$fs" >/dev/null 2>&1 || true
  dbg "cd ${dir:-/}
write $2 $name
sif $1 mode $mode
sif $1 uid 0
sif $1 gid 0"
}
if [[ -z $version ]]; then
  version=$(debugfs -R "cat /usr/lib/vipd/build-info.json" "$fs" 2>/dev/null | sed -n 's/^ *"image": *"\([^"]*\)".*/\1/p')
  [[ -n $version ]] || die "no --version and no image version in the root's build-info.json"
else
  [[ $version =~ ^[A-Za-z0-9][A-Za-z0-9.+~_-]*$ ]] || die "--version: letters, digits and . + ~ _ - only"
  debugfs -R "cat /usr/lib/vipd/build-info.json" "$fs" 2>/dev/null >"$work/build-info.json"
  grep -q '"image":' "$work/build-info.json" || die "the root has no /usr/lib/vipd/build-info.json with an image version"
  sed -i "s/^\( *\"image\": *\"\)[^\"]*\"/\1$version\"/" "$work/build-info.json"
  put /usr/lib/vipd/build-info.json "$work/build-info.json"
fi
for f in "${files[@]}"; do
  guest=${f%%=*}
  host=${f#*=}
  [[ $guest == /* && -f $host ]] || die "--file $f: want /GUEST/PATH=EXISTING_HOST_FILE"
  put "$guest" "$host"
done
e2fsck -fn "$fs" >/dev/null 2>&1 || die "the edited root filesystem does not check clean (e2fsck)"

cat >"$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=vipd-edge-x86_64
version=$version
description=vipd edge node root filesystem

[bundle]
format=plain

[image.rootfs]
filename=rootfs.ext4
MANIFEST
rm -f "$out"
args=(bundle --cert="$cert" --key="$key")
[[ -n ${VIPD_UPDATE_KEYRING:-} ]] && args+=(--signing-keyring="$VIPD_UPDATE_KEYRING")
rauc "${args[@]}" --mksquashfs-args="-comp zstd -Xcompression-level 6 -processors 2" "$work/content" "$out" >"$work/rauc.log" 2>&1 ||
  die "rauc bundle failed: $(tail -5 "$work/rauc.log")"
echo "bundle.sh: $out ($(du -m "$out" | cut -f1) MiB, version $version)" >&2
