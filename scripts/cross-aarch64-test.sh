#!/usr/bin/env bash
# The aarch64 cross build (make cross-aarch64) run under qemu-user on this x86-64 machine: the
# software x87/SSE unit tests (softfloat80, the transcendentals' golden table), then the
# payload tests on the interpreter backend (the guest payloads are x86 code, built by the
# host's `make payloads`).
# Usage: scripts/cross-aarch64-test.sh AARCH64_BUILD HOST_BUILD
set -euo pipefail
cross=$(realpath "$1")
host=$(realpath "$2")
command -v qemu-aarch64 >/dev/null || {
    echo "cross-aarch64-test: qemu-aarch64 missing (Debian package qemu-user)" >&2
    exit 1
}
# The arm64 libraries come from Debian multiarch (/usr/lib/aarch64-linux-gnu), so the loader
# prefix is / (the cross toolchain's own libc under /usr/aarch64-linux-gnu hangs qemu-user
# 7.2 in pthread_create on this kernel).
run="$cross/qemu-run"
mkdir -p "$run"
cat >"$run/quokka" <<WRAP
#!/bin/sh
# quokka for aarch64 under qemu-user. qemu-user refuses to install seccomp filters (they would
# apply to qemu's own system calls), so the sandbox is off here.
if [ "\$1" = run ]; then
    shift
    set -- run --seccomp off "\$@"
fi
exec qemu-aarch64 -L / "$cross/quokka" "\$@"
WRAP
chmod +x "$run/quokka"
ln -sfn "$host/payloads" "$run/payloads"
ln -sfn "$host/guest" "$run/guest"

echo "== softfloat80 under qemu-aarch64"
qemu-aarch64 -L / "$cross/tests/test_softfloat80"
echo "== x87 transcendentals' golden table under qemu-aarch64 (the bits x86-64 gives)"
qemu-aarch64 -L / "$cross/tests/test_x87_transcend"
echo "== payload tests: aarch64 quokka, interpreter backend"
QUOKKA_BUILD="$run" /usr/bin/python3 -m pytest -q \
    tests/e2e/test_payloads.py tests/e2e/test_system_payloads.py
