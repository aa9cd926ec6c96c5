#!/usr/bin/env bash
# Compiles src/xdp/*.c (the responder) and test/support/bpf/*.c (lab programs for tests and
# benchmarks) (BPF target, BTF) into build/xdp/*.o when the source is newer.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/xdp
for src in src/xdp/*.c test/support/bpf/*.c; do
  [[ -e "$src" ]] || continue
  obj="build/xdp/$(basename "${src%.c}").o"
  if [[ ! -f "$obj" || "$src" -nt "$obj" ]]; then
    clang -O2 -g -Wall -Werror -target bpf -I/usr/include/x86_64-linux-gnu -c "$src" -o "$obj"
  fi
done
