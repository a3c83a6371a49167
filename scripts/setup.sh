#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine with Rust stable and Node 20.
# Idempotent: each step checks first and says whether it acted or skipped; a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "toolchains"
for tool in cargo rustup node npm; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is missing (need Rust stable and Node 20+)" >&2; exit 1; }
done
echo "    $(cargo --version), node $(node --version), npm $(npm --version)"

step "Rust: wasm32 target, rustfmt, clippy"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  skip "wasm32-unknown-unknown is installed"
else
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if rustup component list --installed | grep -q "^$component"; then
    skip "$component is installed"
  else
    rustup component add "$component"
  fi
done

step "Rust nightly and cargo-fuzz (the fuzz suite, fuzz/README.md)"
# libFuzzer's instrumentation needs nightly; the project itself builds on stable.
if rustup toolchain list | grep -q '^nightly-'; then
  skip "$(rustc +nightly --version)"
else
  rustup toolchain install nightly --profile minimal
fi
cargo_fuzz_version=0.13.2
have=$(cargo fuzz --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" = "$cargo_fuzz_version" ]; then
  skip "cargo-fuzz $have"
else
  echo "    installing cargo-fuzz $cargo_fuzz_version (found: ${have:-none}); this takes a minute or two"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --force --quiet
fi

step "wasm-bindgen-cli at the Cargo.lock version"
# The CLI must match the wasm-bindgen crate exactly, or the generated glue does not fit the module.
if [ ! -f Cargo.lock ]; then cargo generate-lockfile; fi
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" = "$want" ] && command -v wasm-bindgen-test-runner >/dev/null; then
  skip "wasm-bindgen $have"
else
  echo "    installing wasm-bindgen-cli $want (found: ${have:-none}); this takes a few minutes"
  # Its own lockfile sometimes names a crate release the registry no longer has: then resolve afresh.
  cargo install wasm-bindgen-cli --version "$want" --locked --force --quiet 2>/dev/null ||
    cargo install wasm-bindgen-cli --version "$want" --force --quiet
fi

step "Chromium and ChromeDriver (Debian packages)"
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  skip "$(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  echo "    installed $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
fi

step "PostgreSQL (Debian package): the server's PostgreSQL suites and its fault suite"
# scripts/postgres.sh installs it when missing and says so; then it names what it found.
found=$(bash scripts/postgres.sh --install)
echo "    $found"

step "npm dependencies (npm ci)"
# Stamp the lockfile's hash so an unchanged lockfile skips the reinstall.
stamp=node_modules/.waas-setup-stamp
lock_hash=$(sha256sum package-lock.json | awk '{ print $1 }')
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
  skip "node_modules matches package-lock.json"
else
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > "$stamp"
fi

step "setup done"
