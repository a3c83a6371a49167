#!/usr/bin/env bash
# `npm test`: set-up, then every suite. Prints each suite's output as it runs, then a summary with a
# count per suite. Fails if any suite fails, or if a suite that runs tests ran none.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

setup_start=$SECONDS
bash scripts/setup.sh || { echo "setup failed" >&2; exit 1; }
setup_seconds=$((SECONDS - setup_start))

export CARGO_TERM_COLOR=never
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=/usr/bin/chromedriver
# wasm-bindgen-test-runner would otherwise wait up to 20 s for the browser suite by default.
export WASM_BINDGEN_TEST_TIMEOUT=120

logs=target/test-logs
mkdir -p "$logs"

# The fuzz targets build on nightly into fuzz/target and share nothing with the suites below, so
# they build now, in the background at the lowest priority: on the cycles the suites leave idle
# (servers starting, browsers waiting), instead of minutes of their own at the end. The fuzz
# suite waits for this build, and would show its errors.
nice -n 19 bash scripts/fuzz.sh --build-only >"$logs/fuzz-build.log" 2>&1 &
fuzz_build=$!
trap 'kill "$fuzz_build" 2>/dev/null || true' EXIT
summary=()
total_passed=0
total_failed=0
failed_suites=0

# run_suite NAME COUNTER COMMAND...
#   COUNTER is how tests are counted in the output: cargo (libtest and wasm-bindgen-test lines
#   "test result: ... N passed; M failed"), node (node:test "pass N" / "fail N"), or check (a
#   lint or build step with no test count, judged by its exit status alone).
run_suite() {
  local name=$1 counter=$2
  shift 2
  step "suite: $name"
  local log="$logs/$name.log" start=$SECONDS status passed=0 failed=0
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  case $counter in
    cargo)
      passed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{ s += $4 } END { print s + 0 }')
      failed=$(grep -E '^test result:' "$log" | grep -oE '[0-9]+ failed' | awk '{ s += $1 } END { print s + 0 }')
      ;;
    node)
      passed=$(grep -oE '^. pass [0-9]+$' "$log" | awk '{ s += $3 } END { print s + 0 }')
      failed=$(grep -oE '^. fail [0-9]+$' "$log" | awk '{ s += $3 } END { print s + 0 }')
      ;;
  esac
  local verdict=ok
  if [ "$status" -ne 0 ]; then
    verdict="FAILED (exit $status)"
  elif [ "$counter" != check ] && [ "$passed" -eq 0 ]; then
    verdict="FAILED (ran no test)"
  fi
  [ "$verdict" = ok ] || failed_suites=$((failed_suites + 1))
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  local counts="-"
  [ "$counter" = check ] || counts="$passed passed, $failed failed"
  summary+=("$(printf '%-22s %-22s %-26s %4ss' "$name" "$verdict" "$counts" $((SECONDS - start)))")
}

run_suite rustfmt check cargo fmt --all --check
run_suite clippy-native check cargo clippy --workspace --all-targets --quiet -- -D warnings
# The SDK and the protocol core with their wasm test suites (benchmarks are native only); waas-api
# as the SDK links it (its native-only dev-dependencies, such as proptest, do not build for wasm32).
# The SDK twice: its main module, and its full module with the rare flows (feature rare-flows).
run_suite clippy-wasm check bash -c 'cargo clippy -p waas-sdk -p waas-mpc --lib --tests \
  --target wasm32-unknown-unknown --quiet -- -D warnings &&
  cargo clippy -p waas-sdk --lib --tests --features rare-flows \
  --target wasm32-unknown-unknown --quiet -- -D warnings &&
  cargo clippy -p waas-api --lib --target wasm32-unknown-unknown --quiet -- -D warnings'
# Every crate's tests, under a throwaway PostgreSQL cluster (scripts/postgres.sh): the store's
# tests run on SQLite and on PostgreSQL, the replica suite (replicas.rs) runs servers on one
# PostgreSQL database, and the fault suite (postgres_faults.rs) makes, stops and crashes clusters
# of its own (scripts/postgres.sh --cluster); the other server suites run on SQLite.
run_suite native-tests cargo bash scripts/postgres.sh cargo test --workspace
# The server's integration suites again, on PostgreSQL: each test server on a database of its
# own (api.rs alone builds its app in-process on SQLite; the store's tests, replicas.rs and
# postgres_faults.rs ran on PostgreSQL above). A new suite is added here too. `--workspace`, not
# `-p waas-server`: the features resolve as in the run above, so its build is reused (with -p,
# three minutes of dependencies compile again); it also runs waas-mpc's archive, backup and
# recovery suites again, which share the names (a few seconds, counted here too).
run_suite server-postgres cargo bash scripts/postgres.sh env WAAS_TEST_DATABASE=postgres bash -c '
  cargo test --workspace --test archive --test backup --test bad_input --test concurrency \
    --test cors --test crash --test ethereum --test flow --test passcode --test recovery \
    --test review_fixes --test revoke'
run_suite build check bash scripts/build.sh
run_suite wasm-node cargo cargo test --target wasm32-unknown-unknown -p waas-sdk -p waas-mpc \
  --test sdk_node --test wasm_node
run_suite wasm-chromium cargo cargo test --target wasm32-unknown-unknown --test sdk_browser
run_suite typescript check bash -c 'node_modules/.bin/tsc -p www && node_modules/.bin/tsc -p tsconfig.json'
# The server binary from the native suite's build (a separate `cargo build -p waas-server` would
# resolve features differently and recompile its dependencies).
run_suite e2e-playwright node bash -c '{ [ -x target/debug/waas-server ] || cargo build --quiet -p waas-server; } &&
  node --test --test-reporter=spec --test-concurrency=1 tests/e2e/*.test.mjs'
# Every fuzz target for a few seconds from its committed corpus (fuzz/README.md), once their
# background build is done (the suite's own build step is then a no-op, or shows the error).
wait "$fuzz_build" || true
run_suite fuzz check bash scripts/fuzz.sh

step "summary (logs in $logs/)"
printf '%-22s %-22s %-26s %5s\n' suite result tests time
printf '%-22s %-22s %-26s %4ss\n' setup ok - "$setup_seconds"
printf '%s\n' "${summary[@]}"
echo
echo "total: $total_passed passed, $total_failed failed"
if [ "$failed_suites" -ne 0 ]; then
  echo "npm test: $failed_suites suite(s) failed" >&2
  exit 1
fi
