#!/usr/bin/env bash
# Builds the vipd edge-node image: one command, as root, on Debian 12, from a clone.
#
#   sudo bash image/build.sh [OUT_DIR]          (default OUT_DIR: build/image)
#
# Output in OUT_DIR:
#   vipd-edge.img            raw GPT disk image: flash it with dd (see image/README.md)
#   vipd-edge.img.zst        the same, compressed (not with VIPD_IMAGE_NO_ZSTD=1)
#   vipd-edge.manifest.json  what is inside: versions of kernel, Bun, vipd, libbpf, ...; partitions
#   vipd-edge.raucb          the signed update bundle of the same root (RAUC; image/bundle.sh)
#   vipd-rootfs.ext4         the root slot's filesystem image (what the bundle carries; image/bundle.sh
#                            makes variants of it without rebuilding anything)
#   update-cert.pem          the certificate the bundle was signed with (public)
#   SHA256SUMS               checksums of the files above
#
# Disk layout (GPT): 1 ESP (FAT, systemd-boot, each slot's kernel and initrd, boot entries with
# boot counting) · 2 vipd-root-a (ext4, read-only, slot A) · 3 VIPDSEED (FAT: the site's
# configuration, written at flash time) · 4 vipd-data (ext4: /etc/vipd, /var/lib/vipd, the journal,
# uploaded bundles) · 5 vipd-root-b (slot B, empty until the first update). No loop devices are
# used: every filesystem is made from a directory (mkfs.ext4 -d, mtools) and placed into the disk
# file at its offset.
#
# Update signing (X.509, RAUC): VIPD_UPDATE_CERT / VIPD_UPDATE_KEY sign the bundle and
# VIPD_UPDATE_KEYRING (default: the certificate) is what the image trusts. Without them a
# development key pair is made once in $CACHE/dev-keys (never committed; a site uses its own).
# VIPD_IMAGE_VERSION names the image (default: vipd's version + git revision);
# VIPD_IMAGE_BOOT_TRIES (default 3) and VIPD_IMAGE_READY_DEADLINE (s, default 300) tune the trial
# of a newly installed slot.
#
# The Debian root filesystem (debootstrap + packages, the slow part) is cached in
# /var/cache/vipd-image keyed by a hash of image/rootfs.sh and the mirror; VIPD_IMAGE_NO_CACHE=1
# builds it fresh. Every long step runs under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${1:-build/image}
CACHE=${VIPD_IMAGE_CACHE:-/var/cache/vipd-image}
# Sizes in MiB.
ESP_MB=64
SEED_MB=32
# The data partition also holds an uploaded bundle while it is checked and installed.
DATA_MB=1024
# Each root slot; a bundle's root filesystem must fit in it.
ROOT_MB=1024

log() { printf '[image %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
# The Debian mirror: this machine's own (its apt sources), or VIPD_IMAGE_MIRROR.
# shellcheck source=image/mirror.sh
source image/mirror.sh
mirror=$(debian_mirror bookworm) || die "no Debian mirror (see above)"
MIRROR=${mirror%%$'\t'*}
log "Debian mirror: $MIRROR (from ${mirror#*$'\t'})"
[[ $(id -u) == 0 ]] || die "run as root (debootstrap, chroot and file ownership need it)"
for t in debootstrap mkfs.ext4 mkfs.vfat mcopy sfdisk zstd bun clang sha256sum rauc mksquashfs openssl debugfs; do
  command -v "$t" >/dev/null || die "missing $t: run scripts/setup.sh"
done

start=$SECONDS
mkdir -p "$out" "$CACHE"
out=$(cd "$out" && pwd)
work=$(mktemp -d /var/tmp/vipd-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

# 1. The Debian root filesystem, from the cache when it is there.
key=$( (
  cat image/rootfs.sh
  echo "$MIRROR"
) | sha256sum | cut -c1-16)
tarball=$CACHE/rootfs-$key.tar
if [[ -n ${VIPD_IMAGE_NO_CACHE:-} || ! -f $tarball ]]; then
  log "building the Debian root filesystem (cache key $key)"
  VIPD_IMAGE_MIRROR=$MIRROR timeout 1200 bash image/rootfs.sh "$work/rootfs.tar"
  mv "$work/rootfs.tar" "$tarball"
  # Keep only the newest cached root filesystem.
  find "$CACHE" -maxdepth 1 -name 'rootfs-*.tar' ! -name "rootfs-$key.tar" -delete
else
  log "root filesystem from cache ($tarball)"
fi
mkdir "$root"
tar --numeric-owner --xattrs --acls -C "$root" -xf "$tarball"

# 2. vipd: the single-file executable, the XDP object, the first-boot seed program.
log "compiling vipd (bun build --compile) and the XDP object"
bash scripts/build-xdp.sh
[[ -f build/xdp/arp_responder.o ]] || die "build/xdp/arp_responder.o was not built"
# Each worker's module (src/*/*-worker.ts: the body, file-reload and timing workers) is an extra
# entry point: the executable must hold them (a missing one fails only when vipd starts it:
# "ModuleNotFound resolving /$bunfs/root/...-worker.js").
mapfile -t workers < <(cd "$repo" && ls src/*/*-worker.ts)
((${#workers[@]} > 0)) || die "no src/*/*-worker.ts found"
timeout 300 bun build --compile --minify src/main.ts "${workers[@]}" --outfile "$work/vipd" >"$work/bun-build.log" 2>&1 ||
  {
    cat "$work/bun-build.log" >&2
    die "bun build failed"
  }
timeout 120 bun build --target=bun image/seed/main.ts --outfile "$work/seed.js" >>"$work/bun-build.log" 2>&1 ||
  {
    cat "$work/bun-build.log" >&2
    die "bun build of the seed program failed"
  }
vipd_version=$("$work/vipd" version | awk '{print $2}')
git_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$repo" diff --quiet HEAD -- src image 2>/dev/null || git_rev="$git_rev-dirty"
image_version=${VIPD_IMAGE_VERSION:-$vipd_version+$git_rev}

# The update signing key pair and the keyring the image trusts.
keydir=$CACHE/dev-keys
cert=${VIPD_UPDATE_CERT:-$keydir/dev.cert.pem}
key=${VIPD_UPDATE_KEY:-$keydir/dev.key.pem}
if [[ -z ${VIPD_UPDATE_CERT:-} && ! -f $cert ]]; then
  log "making a development update-signing key pair in $keydir (use your own: VIPD_UPDATE_CERT/KEY)"
  mkdir -p "$keydir"
  chmod 0700 "$keydir"
  openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/O=vipd development/CN=vipd update signing (development)" \
    -keyout "$keydir/dev.key.pem" -out "$keydir/dev.cert.pem" 2>/dev/null || die "openssl could not make the key pair"
fi
[[ -f $cert && -f $key ]] || die "update signing: $cert or $key missing"
keyring=${VIPD_UPDATE_KEYRING:-$cert}

install -d -m 0755 "$root/usr/lib/vipd/xdp" "$root/usr/share/doc/vipd" "$root/data" "$root/var/lib/vipd" \
  "$root/var/log/journal" "$root/etc/vipd" "$root/efi" "$root/etc/rauc"
install -m 0755 "$work/vipd" "$root/usr/lib/vipd/vipd"
install -m 0644 "$work/seed.js" "$root/usr/lib/vipd/seed.js"
install -m 0644 build/xdp/arp_responder.o "$root/usr/lib/vipd/xdp/arp_responder.o"
install -m 0644 image/README.md "$root/usr/share/doc/vipd/README.md"
ln -sf /usr/lib/vipd/vipd-launch "$root/usr/bin/vipd"
cp -a --no-preserve=ownership image/rootfs/. "$root/"
chmod 0750 "$root/etc/vipd"
install -m 0644 "$keyring" "$root/etc/rauc/keyring.pem"
printf '# The trial of a newly installed root slot (rauc-boot, vipd-boot-check).\nTRIES=%s\nREADY_DEADLINE=%s\n' \
  "${VIPD_IMAGE_BOOT_TRIES:-3}" "${VIPD_IMAGE_READY_DEADLINE:-300}" >"$root/usr/lib/vipd/update.conf"

# 3. Appliance hygiene.
chroot "$root" systemctl enable -q systemd-networkd.service systemd-networkd-wait-online.service \
  vipd-seed.service vipd.service rauc.service vipd-boot-check.service
# A boot is good when vipd-boot-check says so (vipd ready), not when systemd reaches boot-complete.
ln -sf /dev/null "$root/etc/systemd/system/systemd-bless-boot.service"
# No password works: root is locked, no other account can log in, no network login is installed.
chroot "$root" usermod -L root
chroot "$root" sh -c 'awk -F: "\$2 == \"\" {print \$1}" /etc/shadow' | grep -q . &&
  die "an account has an empty password"
! compgen -G "$root/usr/sbin/sshd" >/dev/null || die "an SSH server must not be in the image"
# Each node gets its own machine id at boot (kept in /run: the root is read-only).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# What used to live in the writable /var is on the data partition now; the mount points stay.
mkdir -p "$root/var/log/journal"
rm -rf "${root:?}/var/lib/systemd/"* "$root/var/log/"*.log

# 4. Kernel and initrd go to the ESP; the versions go into the manifest.
kver=$(basename "$(echo "$root"/lib/modules/*)")
kpkg=$(chroot "$root" dpkg-query -W -f='${Version}' "linux-image-$kver")
pkgver() { chroot "$root" dpkg-query -W -f='${Version}' "$1"; }
libbpf_version=$(pkgver libbpf1)
bpftool_version=$(pkgver bpftool)
systemd_version=$(pkgver systemd)
debian_version=$(cat "$root/etc/debian_version")
bun_version=$(bun --version)
xdp_sha=$(sha256sum build/xdp/arp_responder.o | cut -d' ' -f1)
vipd_sha=$(sha256sum "$work/vipd" | cut -d' ' -f1)
cat >"$root/usr/lib/vipd/build-info.json" <<EOF
{
  "image": "$image_version",
  "vipd": "$vipd_version",
  "git": "$git_rev",
  "bun": "$bun_version",
  "kernel": "$kver",
  "kernelPackage": "$kpkg",
  "libbpf": "$libbpf_version",
  "bpftool": "$bpftool_version",
  "systemd": "$systemd_version",
  "debian": "$debian_version",
  "vipdSha256": "$vipd_sha",
  "xdpObjectSha256": "$xdp_sha"
}
EOF
# Each slot's kernel and initrd stay in its /boot (a bundle carries them); the ESP holds copies
# for systemd-boot, which cannot read ext4 (rauc-boot set-primary copies them after an install).
mkdir -p "$work/esp/EFI/BOOT" "$work/esp/loader/entries" "$work/esp/vipd/a"
cp "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$work/esp/EFI/BOOT/BOOTX64.EFI"
cp "$root/boot/vmlinuz-$kver" "$work/esp/vipd/a/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/esp/vipd/a/initrd.img"
rm -f "$root"/boot/{System.map,config}-* "$root"/{vmlinuz,initrd.img}{,.old}
root_uuid=$(cat /proc/sys/kernel/random/uuid)
root_b_uuid=$(cat /proc/sys/kernel/random/uuid)
# no_timer_check: under an emulating hypervisor (QEMU without KVM) on a busy host the kernel's
# IO-APIC timer check can fail and panic (measured under load 20); a panic in a trial boot would
# cost the new slot a try.
common="ro rootfstype=ext4 console=tty0 console=ttyS0,115200 net.ifnames=0 systemd.gpt_auto=0 panic=10 no_timer_check"
cmdline="root=PARTUUID=$root_uuid rauc.slot=A $common"
# No `default`: systemd-boot boots the entry with the highest version among those with tries
# left (all share one sort-key); rauc-boot gives a newly installed slot the highest version.
printf 'timeout 2\neditor no\nconsole-mode keep\n' >"$work/esp/loader/loader.conf"
printf '%s\n' "$common" >"$work/esp/loader/vipd-cmdline"
printf 'title vipd edge node %s (slot A)\nsort-key vipd\nversion 1\nlinux /vipd/a/vmlinuz\ninitrd /vipd/a/initrd.img\noptions %s\n' \
  "$image_version" "$cmdline" >"$work/esp/loader/entries/vipd-a.conf"
# Recovery on the serial console: a root shell without a password (physical access only). It
# boots slot A's kernel and root, and is never the default (version 0).
printf 'title vipd recovery shell (console)\nsort-key vipd\nversion 0\nlinux /vipd/a/vmlinuz\ninitrd /vipd/a/initrd.img\noptions %s\n' \
  "$cmdline systemd.unit=rescue.target systemd.setenv=SYSTEMD_SULOGIN_FORCE=1" \
  >"$work/esp/loader/entries/vipd-recovery.conf"

# 5. Filesystems, each from a directory.
log "making filesystems"
mkfat() { # image, size MiB, label, source dir
  mkfs.vfat -C -n "$3" "$1" $(($2 * 1024)) >/dev/null
  if [[ -n $(ls -A "$4") ]]; then mcopy -s -i "$1" "$4"/* ::/; fi
}
mkfat "$work/esp.img" $ESP_MB EFI "$work/esp"
mkdir -p "$work/seed/vipd" "$work/seed/network"
cp image/seed/SEED-README.txt "$work/seed/README.txt"
mkfat "$work/seed.img" $SEED_MB VIPDSEED "$work/seed"
mkdir -p "$work/data/etc/vipd" "$work/data/lib/vipd" "$work/data/lib/systemd" "$work/data/journal"
chmod 0750 "$work/data/etc/vipd"
chmod 0700 "$work/data/lib/vipd"
mkfs.ext4 -q -F -L vipd-data -E root_owner=0:0 -d "$work/data" "$work/data.img" ${DATA_MB}M >/dev/null
fs_mb=$(($(du -sm "$root" | cut -f1) * 115 / 100 + 64))
((fs_mb <= ROOT_MB)) || die "the root filesystem ($fs_mb MiB) does not fit a root slot ($ROOT_MB MiB)"
mkfs.ext4 -q -F -L vipd-root -E root_owner=0:0 -O ^has_journal -m 0 -d "$root" "$work/root.img" "${fs_mb}M" >/dev/null
root_mb=$ROOT_MB

# 6. The disk: GPT with 1 MiB alignment, each filesystem copied to its offset.
img=$out/vipd-edge.img
rm -f "$img" "$img.zst"
total_mb=$((1 + ESP_MB + root_mb + SEED_MB + DATA_MB + root_mb + 1))
truncate -s "${total_mb}M" "$img"
p1=1
p2=$((p1 + ESP_MB))
p3=$((p2 + root_mb))
p4=$((p3 + SEED_MB))
p5=$((p4 + DATA_MB))
sfdisk -q "$img" <<EOF
label: gpt
start=${p1}MiB, size=${ESP_MB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=${p2}MiB, size=${root_mb}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=vipd-root-a, uuid=$root_uuid
start=${p3}MiB, size=${SEED_MB}MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=vipd-seed
start=${p4}MiB, size=${DATA_MB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=vipd-data
start=${p5}MiB, size=${root_mb}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=vipd-root-b, uuid=$root_b_uuid
EOF
put() { dd if="$1" of="$img" bs=1M seek="$2" conv=notrunc,sparse status=none; }
put "$work/esp.img" $p1
put "$work/root.img" $p2
put "$work/seed.img" $p3
put "$work/data.img" $p4

# 7. The update bundle of this root (signed), compressed copy, checksums, manifest.
log "making the update bundle"
mv "$work/root.img" "$out/vipd-rootfs.ext4"
install -m 0644 "$cert" "$out/update-cert.pem"
VIPD_UPDATE_CERT=$cert VIPD_UPDATE_KEY=$key VIPD_UPDATE_KEYRING=$keyring timeout 600 \
  bash image/bundle.sh "$out/vipd-rootfs.ext4" "$out/vipd-edge.raucb" --version "$image_version" >&2 ||
  die "image/bundle.sh failed"
# VIPD_IMAGE_NO_ZSTD=1 leaves the compressed copy out (the tests boot the raw image; zstd of the
# 3 GB sparse image costs ~1 min on a loaded 2-core machine).
zst=vipd-edge.img.zst
if [[ -n ${VIPD_IMAGE_NO_ZSTD:-} ]]; then
  zst=
else
  log "compressing"
  timeout 300 zstd -q -T0 -3 "$img" -o "$img.zst"
fi
manifest=$out/vipd-edge.manifest.json
cat >"$manifest" <<EOF
{
  "image": "vipd-edge.img",
  "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "versions": $(cat "$root/usr/lib/vipd/build-info.json"),
  "kernelCmdline": "$cmdline",
  "partitions": [
    { "n": 1, "name": "esp", "fs": "vfat", "label": "EFI", "startMiB": $p1, "sizeMiB": $ESP_MB },
    { "n": 2, "name": "vipd-root-a", "fs": "ext4", "label": "vipd-root", "startMiB": $p2, "sizeMiB": $root_mb, "mount": "/ (read-only) when slot A is booted" },
    { "n": 3, "name": "vipd-seed", "fs": "vfat", "label": "VIPDSEED", "startMiB": $p3, "sizeMiB": $SEED_MB, "mount": "/run/vipd/seed (read-only)" },
    { "n": 4, "name": "vipd-data", "fs": "ext4", "label": "vipd-data", "startMiB": $p4, "sizeMiB": $DATA_MB, "mount": "/data" },
    { "n": 5, "name": "vipd-root-b", "fs": "ext4", "label": "vipd-root", "startMiB": $p5, "sizeMiB": $root_mb, "mount": "/ (read-only) when slot B is booted; empty until the first update" }
  ],
  "update": { "bundle": "vipd-edge.raucb", "compatible": "vipd-edge-x86_64", "version": "$image_version", "bundleBytes": $(stat -c %s "$out/vipd-edge.raucb") },
  "packages": [
$(chroot "$root" dpkg-query -W -f='    "${Package} ${Version}",\n' | sed '$ s/,$//')
  ]
}
EOF
(cd "$out" && sha256sum vipd-edge.img $zst vipd-edge.manifest.json vipd-edge.raucb vipd-rootfs.ext4 update-cert.pem >SHA256SUMS)
log "done in $((SECONDS - start)) s: $img ($total_mb MiB${zst:+, $(du -m "$img.zst" | cut -f1) MiB compressed}); bundle $(du -m "$out/vipd-edge.raucb" | cut -f1) MiB"
