#!/usr/bin/env bash
# Install quokka's build and test dependencies from Debian's packages, only when missing.
set -euo pipefail
pkgs=(
  gcc clang make          # the build (CI checks both compilers)
  clang-format            # make format, and the CI check that the C code is formatted
  libcmocka-dev           # C unit test framework
  python3-pytest          # end-to-end tests
  libcapstone-dev         # reference x86 decoder: disassembly in debug output, decoder cross-check
  busybox-static cpio gzip # default guest initramfs
  xz-utils zstd binutils  # unpack the Debian kernel (bzImage payload -> vmlinux)
  mmdebstrap e2fsprogs    # Debian test image (make -C guest debian): rootfs, mkfs.ext4 -d
  qemu-system-x86 time    # reference VMM and GNU time, for benchmarks only
  liburing-dev            # io_uring: asynchronous block I/O for virtio-blk
  acpica-tools            # iasl: unit tests disassemble the generated DSDT/MCFG to check them
  libslirp-dev            # user-mode networking for virtio-net (--net user): libslirp
  libseccomp-dev          # the seccomp sandbox (--seccomp): libseccomp
  iperf3                  # network benchmark (bench/net.py): the host side of iperf3
  libmicrohttpd-dev       # the control plane's HTTP/1.1 server (Firecracker API, --api-sock)
  libjson-c-dev           # JSON bodies of the API and --config-file
  curl                    # API e2e tests drive the socket as Firecracker's guide does
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The aarch64 cross build (make cross-aarch64-test): Debian's cross compiler, qemu-user, and the
# libraries quokka links as arm64 packages through multiarch. Guarded: without arm64 packages in
# the apt sources this says so and stops, rather than failing somewhere in the build.
cross_pkgs=(gcc-aarch64-linux-gnu qemu-user libc6:arm64 liburing-dev:arm64 libslirp-dev:arm64
    libmicrohttpd-dev:arm64 libjson-c-dev:arm64 libseccomp-dev:arm64 libcmocka-dev:arm64)
cross_missing=()
for p in "${cross_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || cross_missing+=("$p")
done
if ((${#cross_missing[@]})); then
  echo "installing (aarch64 cross build): ${cross_missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
  fi
  $SUDO apt-get update -q
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
      "${cross_missing[@]}"; then
    echo "install-deps: cannot install the aarch64 cross-build packages (${cross_missing[*]})." >&2
    echo "install-deps: the apt sources must serve arm64 packages (Debian multiarch);" \
      "make cross-aarch64-test needs them." >&2
    exit 1
  fi
fi
