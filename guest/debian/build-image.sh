#!/usr/bin/env bash
# Build BUILD/debian.img, the quokka Debian test image (guest/Makefile: `make debian`).
#   build-image.sh BUILD
# A raw ext4 filesystem (no partition table: the guest mounts /dev/vda) holding a minimal
# Debian (this machine's release, from this machine's apt sources) made by mmdebstrap, plus
# guest/debian/overlay and the modules of the kernel in BUILD/pkg/kernel. See guest/README.md.
#
# Needs root (mmdebstrap's root mode; mkfs.ext4 -d keeps the files' owners). No loop device
# or mount of the image: `mkfs.ext4 -d` fills the filesystem from the staging directory.
# The image is written as debian.img.tmp and renamed when complete. Downloaded .debs are kept
# in BUILD/debian-debs for the next build.
# Environment: QUOKKA_DEBIAN_SIZE (default 2G, a sparse file), QUOKKA_DEBIAN_SUITE (default:
# this machine's VERSION_CODENAME), SOURCE_DATE_EPOCH (passed on: reproducible timestamps).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: build-image.sh BUILD}
log() { echo "guest: debian: $*"; }
die() { echo "guest: debian: error: $*" >&2; exit 1; }

# Packages on top of --variant=minbase (Essential + apt). No recommends.
packages=(
    systemd systemd-sysv udev dbus   # init; dbus for logind, hostnamectl & co
    kmod                             # modprobe for udev, depmod at build time
    iproute2 iputils-ping netbase    # networking (DHCP: systemd-networkd, in systemd)
    curl iperf3 fio                  # network and disk workloads for tests/benchmarks
    e2fsprogs util-linux coreutils procps
)
# Installed-but-useless files left out (docs, man pages, translations).
dpkgopts=(
    'path-exclude=/usr/share/man/*'
    'path-exclude=/usr/share/info/*'
    'path-exclude=/usr/share/locale/*'
    'path-include=/usr/share/locale/locale.alias'
    'path-exclude=/usr/share/doc/*'
    'path-include=/usr/share/doc/*/copyright'
    'path-exclude=/usr/share/lintian/*'
)
# Fixed UUID and directory hash seed: the same inputs give the same filesystem layout.
uuid=5f0c6b1e-0d1a-4c6e-9a57-71a0c0a0d1e5

case $B in
/*) ;;
*) die "BUILD must be an absolute path (got $B)" ;;
esac
case $B in
*[[:space:]\'\"\\]*) die "BUILD must not contain spaces or quotes (got $B)" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap root mode; mkfs.ext4 -d copies owners)"
for c in mmdebstrap mkfs.ext4 e2fsck python3 chroot; do
    command -v "$c" >/dev/null || die "$c not found: run scripts/install-deps.sh"
done
[ -s "$B/pkg/kernel.version" ] || die "no kernel in $B/pkg: run make -C guest first"
kver=$(cat "$B/pkg/kernel.version")
kmods=$B/pkg/kernel/lib/modules/$kver
[ -d "$kmods/kernel" ] || die "no modules in $kmods"

suite=${QUOKKA_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || die "cannot tell this machine's Debian release: set QUOKKA_DEBIAN_SUITE"
size=${QUOKKA_DEBIAN_SIZE:-2G}

img=$B/debian.img
tmpimg=$B/debian.img.tmp
rootfs=$B/debian.rootfs
cache=$B/debian-debs
newcache=$B/debian-debs.new
sources=$B/debian.sources.list
logf=$B/debian.log

# Remove the staging directory, unless something is still mounted in it (mmdebstrap
# unmounts its /proc, /sys, /dev/pts itself, also when interrupted; never rm through them).
remove_rootfs() {
    [ -e "$rootfs" ] || return 0
    if awk -v r="$rootfs" '$5 == r || index($5, r "/") == 1 { found = 1 } END { exit !found }' \
        /proc/self/mountinfo; then
        die "$rootfs still has mounts (see /proc/self/mountinfo): unmount them, then rm -rf it"
    fi
    rm -rf --one-file-system "$rootfs"
}
cleanup() {
    local rc=$?
    rm -f "$tmpimg"
    rm -rf "$newcache"
    remove_rootfs || rc=1
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

remove_rootfs
rm -f "$tmpimg"
rm -rf "$newcache"
mkdir -p "$cache" "$newcache"

python3 "$here/apt-sources.py" "$suite" >"$sources" || die "no apt source for $suite"
log "mmdebstrap $suite from $(awk '{print $(NF-2)"/"$(NF-1)}' "$sources" | paste -sd' ')"
log "  (log: $logf)"

args=(
    --mode=root --variant=minbase --format=directory
    --include="${packages[*]}"
    --aptopt='APT::Install-Recommends "false"'
    --aptopt='APT::Install-Suggests "false"'
    --aptopt='Acquire::Languages "none"'
    --logfile="$logf"
    # Reuse the .debs of the last build, keep this build's ones for the next (the
    # essential packages' .debs are only kept with essential/unlink skipped).
    --skip=essential/unlink
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"'
    --setup-hook="sync-in $cache /var/cache/apt/archives/"
    --customize-hook="sync-out /var/cache/apt/archives $newcache"
    --customize-hook="$here/customize.sh \"\$1\" $here/overlay $kmods $kver"
)
for o in "${dpkgopts[@]}"; do args+=(--dpkgopt="$o"); done
start=$SECONDS
if ! mmdebstrap "${args[@]}" "$suite" "$rootfs" "$sources"; then
    tail -n 40 "$logf" >&2 || true
    die "mmdebstrap failed (full log: $logf)"
fi
log "root filesystem staged in $((SECONDS - start)) s ($(du -sh "$rootfs" | cut -f1))"
rm -rf "$cache"
mv "$newcache" "$cache"
rm -f "$cache/lock"
rm -rf "$cache/partial"

[ -x "$rootfs/sbin/init" ] || [ -L "$rootfs/sbin/init" ] || die "image has no /sbin/init"
[ -s "$rootfs/usr/lib/modules/$kver/modules.dep" ] || die "image has no modules.dep for $kver"

# A new sparse file reads as zeros: the journal need not be written (lazy_journal_init=1
# costs nothing here, =0 would write 64 MiB of zeros); the inode tables are marked zeroed
# (lazy_itable_init=0: mke2fs punches holes), so the guest kernel's ext4lazyinit thread has
# nothing to do after the first mount.
truncate -s "$size" "$tmpimg"
export E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-}
[ -n "$E2FSPROGS_FAKE_TIME" ] || unset E2FSPROGS_FAKE_TIME
mkfs.ext4 -q -F -L quokka-root -U "$uuid" \
    -E "hash_seed=$uuid,lazy_itable_init=0,lazy_journal_init=1" \
    -d "$rootfs" "$tmpimg" || die "mkfs.ext4 -d failed"
e2fsck -fn "$tmpimg" >/dev/null 2>&1 || die "the new filesystem does not pass e2fsck -fn"
mv -f "$tmpimg" "$img"
log "debian.img: $size, $(du -h "$img" | cut -f1) on disk, kernel modules $kver," \
    "built in $((SECONDS - start)) s"
