#!/usr/bin/env bash
# Runs every test vipd has: lint + format check, typecheck, CRD drift, unit tests, lab tests
# (network namespaces + real XDP, needs root) and interop tests (real BIRD/FRR peers, needs root).
# Installs what is missing first. Ends with one line "N passed, N failed" from the real counts.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
check() { # name, command...
  local name=$1
  shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "!! $name failed"
  fi
}

check "lint and format (biome)" bunx biome check .
check "typecheck (tsc --noEmit)" bunx tsc --noEmit -p .

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Each tier in its own bun process so a crash in one cannot hide the others.
for tier in test/unit test/lab test/interop; do
  if compgen -G "$tier/*.test.ts" >/dev/null; then
    echo "== bun test $tier"
    bun test "$tier" 2>&1 | tee -a "$out"
    rc=${PIPESTATUS[0]}
    if ((rc != 0)) && ! grep -qE '^ *[0-9]+ fail' "$out"; then
      failed=$((failed + 1)) # the runner died without a summary
    fi
  fi
done
p=$(grep -E '^ *[0-9]+ pass$' "$out" | awk '{s += $1} END {print s + 0}')
f=$(grep -E '^ *[0-9]+ fail$' "$out" | awk '{s += $1} END {print s + 0}')
passed=$((passed + p))
failed=$((failed + f))
echo
echo "$passed passed, $failed failed"
((failed == 0))
