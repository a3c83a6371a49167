#!/usr/bin/env bash
# Builds the SDK into pkg/ (the npm package) and the demo web app into www/dist.
# Assumes scripts/setup.sh has run (wasm32 target, wasm-bindgen, npm dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# Two builds of the crate (docs/design-notes.md, "Two modules"): the main module, which initAsync()
# loads, and the full module with the rare flows (feature rare-flows), loaded on their first call.
# Cargo writes both to the same path, so each is moved aside before the next build.
step "SDK: compile to wasm32 (profile wasm-release: size first), main and full module"
out=target/wasm32-unknown-unknown/wasm-release
cargo build --quiet --lib --target wasm32-unknown-unknown --profile wasm-release
cp "$out/waas_sdk.wasm" "$out/waas_sdk_main.wasm"
cargo build --quiet --lib --target wasm32-unknown-unknown --profile wasm-release --features rare-flows
cp "$out/waas_sdk.wasm" "$out/waas_sdk_full.wasm"

step "SDK: wasm-bindgen into pkg/"
rm -rf pkg
wasm-bindgen --target bundler --out-dir pkg --out-name waas_sdk "$out/waas_sdk_main.wasm"
wasm-bindgen --target bundler --out-dir pkg --out-name waas_sdk_full "$out/waas_sdk_full.wasm"

step "SDK: wasm-opt -Oz (npm's binaryen)"
for module in waas_sdk_bg waas_sdk_full_bg; do
  node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers "pkg/$module.wasm" -o "pkg/$module.wasm"
done

step "SDK: npm package files"
node scripts/package-sdk.mjs
for module in waas_sdk_bg waas_sdk_full_bg; do
  raw=$(stat -c %s "pkg/$module.wasm")
  gz=$(gzip -9 -c "pkg/$module.wasm" | wc -c)
  echo "    pkg/$module.wasm: $raw bytes raw, $gz bytes gzip -9"
done

step "web app: vite build into www/dist"
node_modules/.bin/vite build --logLevel warn www
