#!/usr/bin/env bash
# The live demo (the README's main-job command): installs what is missing, then builds a
# throwaway lab of network namespaces, runs vipd on two nodes, and shows what happens.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bun scripts/demo.ts "$@"
