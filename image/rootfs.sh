#!/usr/bin/env bash
# Stage 1 of the edge-node image: a minimal Debian 12 root filesystem with kernel, small initrd,
# systemd, iproute2, libbpf and bpftool, and the systemd-boot EFI binary — no vipd yet.
#
#   bash image/rootfs.sh OUT.tar     (root; Debian 12 host with debootstrap)
#
# The result is a tar of the root (numeric owners, xattrs). It depends only on this file and the
# mirror, so build.sh caches it keyed by their hash. Every long step runs under `timeout`.
set -euo pipefail
out=${1:?usage: rootfs.sh OUT.tar}
SUITE=bookworm
# Packages installed into the image (no recommends). Change this list and the cache key changes.
# dbus: systemd-logind needs it to turn the power button into a clean shutdown (and the RAUC
# service answers on the system bus). rauc, squashfs-tools: signed A/B system updates (image/README.md, Update).
PACKAGES=(linux-image-amd64 systemd-sysv udev kmod dbus iproute2 libbpf1 bpftool ca-certificates
  e2fsprogs dosfstools systemd-boot-efi rauc squashfs-tools)

log() { printf '[rootfs] %s\n' "$*" >&2; }
# The Debian mirror: this machine's own (its apt sources), or VIPD_IMAGE_MIRROR (build.sh sets it).
# shellcheck source=image/mirror.sh
source "$(dirname "$0")/mirror.sh"
mirror=$(debian_mirror "$SUITE") || exit 1
MIRROR=${mirror%%$'\t'*}
log "Debian mirror: $MIRROR (from ${mirror#*$'\t'})"
work=$(mktemp -d /var/tmp/vipd-rootfs.XXXXXX)
root=$work/root
cleanup() {
  for m in dev/pts dev proc sys; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $SUITE (minbase) from $MIRROR"
timeout 600 debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# A small initrd: only the drivers needed to find the root on virtio, SATA, NVMe or USB and mount
# it. They are included, not force-loaded: udev in the initrd loads those the hardware has.
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
printf 'MODULES=list\nCOMPRESS=zstd\n' >"$root/etc/initramfs-tools/conf.d/vipd-small"
cat >"$root/etc/initramfs-tools/hooks/vipd-storage" <<'HOOK'
#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_blk virtio_scsi sd_mod nvme ahci usb_storage uas xhci_pci ehci_pci \
  ext4 crc32c_generic; do
  manual_add_modules "$m"
done
HOOK
chmod +x "$root/etc/initramfs-tools/hooks/vipd-storage"
# No daemons start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"

for m in proc sys dev dev/pts; do mount --bind "/$m" "$root/$m"; done
log "installing ${PACKAGES[*]}"
timeout 900 chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
  apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$work/apt.log" 2>&1 ||
  { tail -30 "$work/apt.log" >&2; exit 1; }
chroot "$root" apt-get clean
for m in dev/pts dev proc sys; do umount -l "$root/$m"; done
rm -f "$root/usr/sbin/policy-rc.d"

# Trim what an appliance never uses: docs, man pages, locales, apt lists, and kernel modules for
# graphics, sound, media, wireless and other buses an edge box running vipd does not need.
rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
kdir=$(echo "$root"/lib/modules/*)
rm -rf "$kdir"/kernel/{sound,drivers/gpu,drivers/media,drivers/net/wireless,drivers/infiniband,drivers/staging,drivers/bluetooth,drivers/isdn,net/bluetooth,net/wireless,net/mac80211}
chroot "$root" depmod "$(basename "$kdir")"

log "packing $(du -sh "$root" | cut -f1) into $out"
tar --numeric-owner --xattrs --acls -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
