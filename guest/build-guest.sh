#!/usr/bin/env bash
# Build steps for the default test guest; guest/Makefile calls them. See guest/README.md.
#   build-guest.sh fetch-kernel  BUILD   download + unpack Debian's linux-image-cloud-amd64
#   build-guest.sh fetch-busybox BUILD   download + unpack Debian's busybox-static
#   build-guest.sh initrd        BUILD   stage + pack BUILD/initrd.cpio.gz (with guest/tools/*.c
#                                        built static into /usr/bin)
# Downloads are kept in BUILD/debs and reused; set QUOKKA_GUEST_REFRESH=1 to fetch the
# newest versions again.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
step=${1:?step}
B=${2:?build dir}
debs=$B/debs
mkdir -p "$debs"

log() { echo "guest: $*"; }
die() { echo "guest: error: $*" >&2; exit 1; }

# download PKG: apt-get download into $debs (unless a .deb of PKG is already there); print its path.
download() {
    local pkg=$1 f
    f=$(ls "$debs/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
    if [ -z "$f" ] || [ "${QUOKKA_GUEST_REFRESH:-}" = 1 ]; then
        command -v apt-get >/dev/null || die "apt-get not found: cannot download $pkg"
        log "downloading $pkg" >&2
        rm -f "$debs/${pkg}"_*.deb
        local out
        # (as root, apt warns that the download is "unsandboxed": harmless, filtered out)
        out=$(cd "$debs" && apt-get download -q "$pkg" 2>&1) || { echo "$out" >&2; die "apt-get download $pkg failed"; }
        echo "$out" | grep -v -e '^W: Download is performed unsandboxed' -e '^Get:' -e '^Fetched' >&2 || true
        f=$(ls "$debs/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
        [ -n "$f" ] || die "apt-get download $pkg produced no .deb"
    fi
    echo "$f"
}

case $step in
fetch-kernel)
    meta=$(download linux-image-cloud-amd64)
    dep=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -n1)
    [ -n "$dep" ] || die "cannot resolve the kernel package from $meta's Depends"
    deb=$(download "$dep")
    rm -rf "$B/pkg/kernel"
    mkdir -p "$B/pkg/kernel"
    dpkg-deb -x "$deb" "$B/pkg/kernel"
    ver=${dep#linux-image-}
    [ -f "$B/pkg/kernel/boot/vmlinuz-$ver" ] || die "$deb has no /boot/vmlinuz-$ver"
    echo "$ver" >"$B/pkg/kernel.version"
    log "kernel $ver ($(basename "$deb"))"
    ;;
fetch-busybox)
    deb=$(download busybox-static)
    rm -rf "$B/pkg/busybox"
    mkdir -p "$B/pkg/busybox"
    dpkg-deb -x "$deb" "$B/pkg/busybox"
    [ -x "$B/pkg/busybox/bin/busybox" ] || die "$deb has no /bin/busybox"
    log "busybox ($(basename "$deb"))"
    ;;
initrd)
    ver=$(cat "$B/pkg/kernel.version")
    kmods=$B/pkg/kernel/lib/modules/$ver
    bb=$B/pkg/busybox/bin/busybox
    S=$B/initrd.staging
    rm -rf "$S"
    mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,mnt,etc} "$S/lib/modules/$ver"
    chmod 1777 "$S/tmp"
    cp "$bb" "$S/bin/busybox"
    # One symlink per applet, where busybox --list --full says it lives (bin/sh, sbin/poweroff...).
    "$bb" --list-full | while read -r app; do
        [ "$app" = bin/busybox ] && continue
        rel=$(echo "$app" | sed 's|[^/]*/|../|g; s|[^/]*$||')   # usr/bin/x -> ../../
        ln -sf "${rel}bin/busybox" "$S/$app"
    done
    [ -L "$S/bin/sh" ] || die "busybox has no sh applet"
    install -m 0755 "$here/init" "$S/init"
    # Small static test programs (guest/tools/*.c, e.g. vsock-test) go to /usr/bin.
    for src in "$here"/tools/*.c; do
        [ -e "$src" ] || continue
        name=$(basename "$src" .c)
        gcc -static -O2 -Wall -Wextra -Werror -o "$S/usr/bin/$name" "$src" || die "cannot build $src"
    done
    # udhcpc's default event script: /init brings eth0 up with DHCP (see udhcpc.script).
    install -D -m 0755 "$here/udhcpc.script" "$S/etc/udhcpc/default.script"
    echo "root:x:0:0:root:/root:/bin/sh" >"$S/etc/passwd"
    echo "root:x:0:" >"$S/etc/group"

    # The virtio drivers (modules in the cloud kernel unless listed in modules.builtin) and
    # everything they depend on, from each module's .modinfo "depends=". ext4 and what it
    # needs mount a root= filesystem (built in, in the cloud kernel); vsock is for guest<->host
    # sockets (/init loads it).
    want="virtio virtio_ring virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev virtio_mmio
          virtio_blk virtio_net net_failover failover virtio_console virtio_rng
          ext4 jbd2 mbcache crc16 crc32c_generic
          vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport"
    declare -A path=()
    while read -r f; do
        n=$(basename "$f" .ko); path[${n//-/_}]=$f
    done < <(cd "$kmods" && find kernel -name '*.ko')
    builtin=" $(sed 's|.*/||; s|\.ko$||; s|-|_|g' "$kmods/modules.builtin" | tr '\n' ' ') "
    declare -A seen=()
    queue=($want)
    while ((${#queue[@]})); do
        m=${queue[0]}; queue=("${queue[@]:1}")
        [ -n "${seen[$m]:-}" ] && continue
        seen[$m]=1
        case $builtin in *" $m "*) continue ;; esac
        f=${path[$m]:-}
        [ -n "$f" ] || { log "warning: module $m is neither built in nor in the package" >&2; continue; }
        mkdir -p "$S/lib/modules/$ver/$(dirname "$f")"
        cp "$kmods/$f" "$S/lib/modules/$ver/$f"
        deps=$(objcopy -O binary --only-section=.modinfo "$kmods/$f" /dev/stdout |
            tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' ')
        for d in $deps; do queue+=("${d//-/_}"); done
    done
    cp "$kmods/modules.builtin" "$kmods/modules.order" "$S/lib/modules/$ver/"
    "$bb" depmod -b "$S" "$ver"
    [ -s "$S/lib/modules/$ver/modules.dep" ] || die "depmod wrote no modules.dep"

    python3 "$here/mkcpio.py" "$S" "$B/initrd.cpio" nod dev/console 0600 5 1 nod dev/null 0666 1 3
    gzip -n -9 -f "$B/initrd.cpio"
    log "initrd.cpio.gz $(stat -c %s "$B/initrd.cpio.gz") bytes," \
        "$(find "$S/lib/modules" -name '*.ko' | wc -l) modules"
    ;;
*) die "unknown step $step" ;;
esac
