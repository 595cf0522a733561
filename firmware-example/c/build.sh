#!/usr/bin/env bash
# Builds the C example for the Cortex-M4F: the C API's static library (Rust, the workspace's
# capi/ crate, for thumbv7em-none-eabihf) and main.c + startup.c + the model, linked with
# Debian's arm-none-eabi-gcc. Prints the ELF's path.
#
#   MODEL=../models/moons-f32.tsm STEPS=50 SEED=42 N=4 ./build.sh
#   qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
#       -semihosting-config enable=on,target=native -kernel "$(./build.sh)"
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
model=$(realpath "${MODEL:-../models/moons-f32.tsm}")
out=${OUT:-$root/target/c-example}
mkdir -p "$out"

# The library, as C firmware links it (release: the engine's Cortex-M4 kernels, optimized).
(cd "$root" && cargo build --quiet --release -p tinyscore-capi --target thumbv7em-none-eabihf)
lib=$root/target/thumbv7em-none-eabihf/release/libtinyscore_capi.a

name=$(basename "$model")
elf=$out/tinyscore-c-${name%.tsm}.elf
arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 \
  -std=c11 -O2 -Wall -Wextra -Werror -ffreestanding -nostdlib -nostartfiles \
  -ffunction-sections -fdata-sections -Wl,--gc-sections -Wl,-z,noexecstack -T link.ld \
  -I "$root/capi/include" \
  -DMODEL_PATH="\"$model\"" -DMODEL_NAME="\"$name\"" \
  -DSTEPS="${STEPS:-100}u" -DSEED="${SEED:-42}ull" -DN="${N:-8}u" \
  startup.c main.c model.S "$lib" -lgcc -o "$elf"
echo "$elf"
