#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (the thumbv7em target, QEMU),
# then formatting, lints, docs, the no_std engine's Cortex-M4F build, the firmware, and every test
# (the firmware's bit-exact run in QEMU among them).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing what the tests need"
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx thumbv7em-none-eabihf || rustup target add thumbv7em-none-eabihf
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt
fi
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi
qemu-system-arm --version | head -n 1

step "format"
cargo fmt --all -- --check
(cd firmware-example && cargo fmt -- --check)

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "engine for Cortex-M4F (no_std, thumbv7em-none-eabihf)"
cargo build -p tinyscore-engine --target thumbv7em-none-eabihf --release

step "firmware (QEMU profile and board profile)"
(cd firmware-example && cargo clippy --release -- -D warnings && cargo build --release)
(cd firmware-example && cargo build --release --no-default-features --features board)

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "tests"
cargo test --workspace
