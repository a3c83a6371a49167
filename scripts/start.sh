#!/usr/bin/env bash
# `npm start`: set-up, build the SDK and the web app, then run waas-server with its embedded SQLite
# database under ./data, serving the API and the demo wallet. Extra arguments go to waas-server
# (`npm start -- --listen 127.0.0.1:9000`); so do the WAAS_* environment variables.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

bash scripts/setup.sh
bash scripts/build.sh

step "waas-server: release build"
cargo build --quiet --release -p waas-server

export WAAS_LISTEN=${WAAS_LISTEN:-127.0.0.1:8080}
export WAAS_DATABASE=${WAAS_DATABASE:-./data/waas.db}
export WAAS_STATIC_DIR=${WAAS_STATIC_DIR:-www/dist}
step "waas-server: database $WAAS_DATABASE, web app from $WAAS_STATIC_DIR (Ctrl-C stops it)"
echo "    open the demo at http://localhost:${WAAS_LISTEN##*:}/ once it says it is listening"
exec target/release/waas-server "$@"
