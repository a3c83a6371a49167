#!/usr/bin/env bash
# Builds the SDK into pkg/ (the npm package) and the demo web app into www/dist.
# Assumes scripts/setup.sh has run (wasm32 target, wasm-bindgen, npm dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "SDK: compile to wasm32 (profile wasm-release: size first)"
cargo build --quiet --lib --target wasm32-unknown-unknown --profile wasm-release
wasm=target/wasm32-unknown-unknown/wasm-release/waas_sdk.wasm

step "SDK: wasm-bindgen into pkg/"
rm -rf pkg
wasm-bindgen --target bundler --out-dir pkg "$wasm"

step "SDK: wasm-opt -Oz (npm's binaryen)"
node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers pkg/waas_sdk_bg.wasm -o pkg/waas_sdk_bg.wasm

step "SDK: npm package files"
node scripts/package-sdk.mjs
raw=$(stat -c %s pkg/waas_sdk_bg.wasm)
gz=$(gzip -9 -c pkg/waas_sdk_bg.wasm | wc -c)
echo "    pkg/waas_sdk_bg.wasm: $raw bytes raw, $gz bytes gzip -9"

step "web app: vite build into www/dist"
node_modules/.bin/vite build --logLevel warn www
