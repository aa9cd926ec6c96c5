#!/usr/bin/env bash
# Runs every test vipd has: lint + format check, typecheck, CRD drift, unit tests, lab tests
# (network namespaces + real XDP, needs root) and interop tests (real BIRD/FRR peers, needs root).
# Installs what is missing first. Ends with one line "N passed, N failed" from the real counts.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failures=()
check() { # name, command...
  local name=$1
  shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "!! $name failed"
    failures+=("$name")
  fi
}

check "lint and format (biome)" bunx biome check .
check "typecheck (tsc --noEmit)" bunx tsc --noEmit -p .

# Kubernetes mode is tested against a real kube-apiserver too: built once from Debian's source
# package and cached (about 8 minutes cold). Without it the real-server tests fail, not skip.
check "kube-apiserver for the Kubernetes tier (scripts/build-kube-apiserver.sh)" \
  bash -c 'bash scripts/build-kube-apiserver.sh >/dev/null'

out=$(mktemp)
tier_out=$(mktemp)
trap 'rm -f "$out" "$tier_out"' EXIT
# Each tier in its own bun process so a crash in one cannot hide the others.
for tier in test/unit test/lab test/interop test/k8s test/image; do
  if compgen -G "$tier/*.test.ts" >/dev/null; then
    echo "== bun test $tier"
    # A hard limit per tier, so a hung VM or server cannot eat CI's time (the image tier: a
    # cold image build and five QEMU boots, ~15 minutes, plus the A/B update test
    # test/image/system-update.test.ts — its own warm build and five more boots: 702-926 s at
    # load 4-13, 1110 s at load 6-15 — 45 minutes in all).
    limit=1800
    [[ "$tier" == test/image ]] && limit=2700
    timeout -k 10 "$limit" bun test "$tier" 2>&1 | tee "$tier_out"
    rc=${PIPESTATUS[0]}
    cat "$tier_out" >>"$out"
    if ((rc != 0)) && ! grep -qE '^ *[0-9]+ fail$' "$tier_out"; then
      echo "!! bun test $tier exited $rc without a summary"
      failures+=("bun test $tier exited $rc without a summary")
      failed=$((failed + 1))
    fi
  fi
done
p=$(grep -E '^ *[0-9]+ pass$' "$out" | awk '{s += $1} END {print s + 0}')
f=$(grep -E '^ *[0-9]+ fail$' "$out" | awk '{s += $1} END {print s + 0}')
passed=$((passed + p))
failed=$((failed + f))

# Benchmarks: each compares vipd with a baseline measured in the same run and ends with its
# figure. They run in CI so their numbers are on record; a benchmark passes when it completes and
# prints its closing line (goals are judged by reading the figures, not asserted: the machine is
# shared and noisy). VIPD_SKIP_BENCH=1 leaves them out of a local run.
bench() { # timeout-seconds, closing-line regex, script, args...
  local secs=$1 want=$2
  shift 2
  echo "== bench: $*"
  local log
  log=$(mktemp)
  timeout -k 10 "$secs" bun "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local last
  last=$(grep -v '^\s*$' "$log" | tail -1)
  rm -f "$log"
  if ((rc == 0)) && [[ "$last" =~ $want ]]; then
    passed=$((passed + 1))
    bench_lines+=("$last  ($*)")
  else
    failed=$((failed + 1))
    echo "!! bench $* failed (exit $rc, last line: $last)"
    failures+=("bench $* (exit $rc, last line: $last)")
  fi
}
bench_lines=()
if [[ "${VIPD_SKIP_BENCH:-}" != 1 ]]; then
  for b in bench/*.ts; do
    case "$b" in
    bench/ipam.ts) bench 600 '^allocations/s: [0-9]+' "$b" ;;
    bench/arp.ts) bench 600 '^xdp/kernel: [0-9.]+' "$b" ;;
    bench/bgp.ts) bench 900 '^vipd/gobgp time: [0-9.]+' "$b" ;;
    bench/bfd.ts) bench 900 '^p99 detection ms: [0-9.]+' "$b" ;;
    bench/failover.ts) bench 900 '^max failover ms: [0-9.]+' "$b" ;;
    bench/k8s.ts) bench 600 '^services/s: [0-9.]+' "$b" ;;
    bench/scale.ts) bench 420 '^ready s at 10k: [0-9.]+' "$b" ;;
    bench/stall.ts) bench 300 '^false downs: [0-9]+' "$b" ;;
    bench/site.ts) bench 120 '^site converge ms p50: [0-9.]+' "$b" ;;
    esac
  done
  echo
  echo "== benchmark figures"
  for l in "${bench_lines[@]}"; do echo "  $l"; done
  # The report a person reads (plots, headline table, machine load) from bench/results/*.json:
  # into build/ so a test run leaves the committed docs/benchmarks.md alone (a release refreshes
  # that: see docs/benchmarks.md). A missing results file is "not run"; a malformed one fails.
  check "benchmark report (build/benchmarks.md)" timeout -k 10 300 bun bench/report.ts --out build/benchmarks.md
fi

# CI shows only the tail of the log: repeat what failed here, next to the counts.
if ((failed > 0)); then
  echo
  echo "== why the failed tests failed (the error bun printed for each)"
  awk -f scripts/failure-details.awk "$out" | head -120
  echo
  echo "== what failed"
  grep -E '^\(fail\) ' "$out" | awk '!seen[$0]++' | head -50
  for l in "${failures[@]}"; do echo "$l"; done
fi

echo
echo "$passed passed, $failed failed"
((failed == 0))
