#!/usr/bin/env bash
# mmdebstrap --customize-hook for the quokka Debian image (called by build-image.sh):
#   customize.sh ROOT OVERLAY KMODS KVER
# ROOT is the finished chroot (packages installed); OVERLAY is guest/debian/overlay, copied
# over it; KMODS is the unpacked kernel's /lib/modules/KVER, copied into the image.
set -euo pipefail

root=${1:?root} overlay=${2:?overlay} kmods=${3:?kmods} kver=${4:?kernel version}
die() { echo "guest: debian: error: $*" >&2; exit 1; }
[ -d "$root/etc" ] || die "$root is not a root filesystem"
in_root() { chroot "$root" "$@"; }

# Files of our own (fstab, hostname, hosts, networkd + journald config, the ready unit).
# Plain files only: no symlinks that could point out of the root; owned by root.
(cd "$overlay" && find . -type d) | while read -r d; do mkdir -p "$root/$d"; done
(cd "$overlay" && find . -type f) | while read -r f; do
    install -o root -g root -m "$(stat -c %a "$overlay/$f")" "$overlay/$f" "$root/$f"
done

# The kernel's modules, so udev can load virtio_net, virtio_rng, vsock... (Debian's .deb
# has no modules.dep & co: depmod writes them).
[ -d "$kmods/kernel" ] || die "no kernel modules in $kmods"
mkdir -p "$root/usr/lib/modules"
rm -rf "$root/usr/lib/modules/$kver"
cp -a "$kmods" "$root/usr/lib/modules/$kver"
chown -R root:root "$root/usr/lib/modules/$kver"
in_root depmod -a "$kver"
[ -s "$root/usr/lib/modules/$kver/modules.dep" ] || die "depmod wrote no modules.dep"

# root logs in on the consoles with an empty password (pam_unix has nullok on Debian).
in_root passwd -q -d root

# eth0 rather than predictable names (the PCI slot differs between quokka and QEMU).
ln -sfn /dev/null "$root/etc/systemd/network/99-default.link"

# No meaningful DNS server is known at build time (the host's resolv.conf is not copied).
echo "# quokka test guest: no DNS configured (systemd-resolved is not installed)" \
    >"$root/etc/resolv.conf"

# Units. serial-getty@ttyS0 always (the 16550 exists on quokka and QEMU, whatever the
# console= is); serial-getty@hvc0 comes from systemd-getty-generator when /dev/hvc0 exists
# at boot (the initramfs loads virtio_console), so there is no 90 s wait without it.
in_root systemctl enable --quiet systemd-networkd.service quokka-ready.service \
    serial-getty@ttyS0.service
# No VGA console is looked at: no getty on tty1.
in_root systemctl disable --quiet getty@tty1.service 2>/dev/null || true
rm -f "$root/etc/systemd/system/getty.target.wants/getty@tty1.service"
# No display manager: multi-user.target rather than graphical.target.
in_root systemctl set-default --quiet multi-user.target
# Slow or pointless on a throw-away test VM run under an emulator: periodic jobs; the
# "/usr changed" rebuilds (ldconfig and hwdb were done by the package installs already);
# modules loaded at every boot for devices that the VM does not have (drm, EFI pstore) or
# that load on first use anyway (loop, dm_mod: /dev/loop-control, /dev/mapper/control);
# binfmt_misc.
mask=(apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service
    dpkg-db-backup.timer dpkg-db-backup.service e2scrub_all.timer e2scrub_all.service
    e2scrub_reap.service fstrim.timer fstrim.service systemd-timesyncd.service
    man-db.timer ldconfig.service systemd-hwdb-update.service
    systemd-journal-catalog-update.service
    modprobe@drm.service modprobe@efi_pstore.service modprobe@loop.service
    modprobe@dm_mod.service
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount)
for u in "${mask[@]}"; do ln -sfn /dev/null "$root/etc/systemd/system/$u"; done
