# Shared by the scripts: output helpers and the PATH they need. Source it; do not run it.

# cargo install puts wasm-bindgen here; a fresh shell may not have it on PATH yet.
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }
skip() { printf '    (skip) %s\n' "$*"; }
