#!/usr/bin/env bash
# The fuzz targets (fuzz/, cargo-fuzz on nightly): builds them once, then runs each for a few
# seconds from its committed corpus. Fails on the first crash, panic, timeout or out-of-memory.
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (default 4) each
#   scripts/fuzz.sh sign typed_data  just these
#   scripts/fuzz.sh --build-only     the build alone (npm test starts it early, in the background)
# New inputs the fuzzer finds go to a temporary folder, so the committed corpus stays as it is;
# a crashing input is kept in fuzz/artifacts/<target>/ (see fuzz/README.md to reproduce it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

seconds=${FUZZ_SECONDS:-4}
# No sanitizer: every crate here forbids unsafe code, and what the targets look for (panics,
# overflow checks, aborts, stack overflows, timeouts, memory blow-ups) libFuzzer catches alone.
# Without AddressSanitizer the build is faster and so is every execution. Debug assertions and
# overflow checks are on for the project's own crates only (fuzz/Cargo.toml's profile): `-O`
# turns off cargo-fuzz's default of both everywhere, which made the protocol targets about five
# times slower in the curve arithmetic and the OT engine.
flags=(--sanitizer none --release)

step "build the fuzz targets (nightly, release with debug assertions)"
cargo +nightly fuzz build --fuzz-dir fuzz "${flags[@]}"
if [ "${1:-}" = --build-only ]; then
  exit 0
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  step "fuzz $target for ${seconds}s"
  mkdir -p "$scratch/$target" "fuzz/corpus/$target"
  # -timeout: one input taking over 10 s is a finding (typed data must never run long);
  # -rss_limit_mb: a memory blow-up is one too.
  log="$scratch/$target.log"
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz "${flags[@]}" "$target" \
    "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    # The panic, libFuzzer's report and cargo-fuzz's reproduction commands.
    tail -n 60 "$log"
    echo "fuzz: $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' "$log" |
    sed 's/^/    /'
done
echo
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a finding"
