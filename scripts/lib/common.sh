# Shared by scripts/run and scripts/test: paths, logging, and installing what is missing
# (and only what is missing). Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${LOOKOUT_CACHE:-$HOME/.cache/lookout}"
TOOLS="$CACHE/tools"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export PATH="$TOOLS/bin:$TOOLS/npm/bin:$HOME/.cargo/bin:$PATH"
CARGO_LEPTOS_VERSION=0.3.7
BINARYEN_VERSION=132.0.0

log() { printf '\033[1m[lookout]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[lookout] error:\033[0m %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo"
fi

APT_UPDATED=""
apt_install() {
  # apt_install PKG... — installs the Debian packages that are not installed yet.
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get to install them"
  log "installing Debian packages: ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then
    $SUDO apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

ensure_build_packages() {
  # A C toolchain and OpenSSL headers for librdkafka (TLS, SCRAM), PostgreSQL server binaries, and Node for the wasm tools.
  local pkgs=(build-essential pkg-config libssl-dev postgresql curl python3 ca-certificates)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
  apt_install "${pkgs[@]}"
  # The postgresql package starts a system cluster; Lookout never uses it.
}

prune_target_dir() {
  # The shared target dir grows with every checkout path it builds (CI clones, the working
  # copy): past 25 GB, drop the incremental caches and test binaries older than a day —
  # they are rebuilt when needed — so a long-lived machine does not fill its disk.
  local dir="$CARGO_TARGET_DIR" kb
  [ -d "$dir" ] || return 0
  kb="$(du -sk "$dir" 2>/dev/null | cut -f1)"
  if [ "${kb:-0}" -gt $((25 * 1024 * 1024)) ]; then
    log "pruning $dir ($((kb / 1024 / 1024)) GB): incremental caches and old test binaries"
    rm -rf "$dir"/debug/incremental "$dir"/release/incremental
    find "$dir"/debug/deps -maxdepth 1 -type f -executable -mtime +1 -delete 2>/dev/null || true
  fi
}

ensure_rust_tools() {
  command -v cargo >/dev/null 2>&1 || die "Rust is required (https://rustup.rs); cargo is not on PATH"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown >/dev/null || die "rustup target add failed"
  fi
  mkdir -p "$TOOLS"
  if [ "$("$TOOLS/bin/cargo-leptos" --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
    log "building cargo-leptos $CARGO_LEPTOS_VERSION (no_downloads; once, ~15 min on 2 cores)"
    cargo install --quiet "cargo-leptos@$CARGO_LEPTOS_VERSION" --locked --features no_downloads --root "$TOOLS" \
      || die "cargo install cargo-leptos failed"
  fi
  # wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
  local want
  want="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' "$ROOT/Cargo.lock")"
  [ -n "$want" ] || die "cannot read the wasm-bindgen version from Cargo.lock"
  if [ "$("$TOOLS/bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    log "building wasm-bindgen-cli $want (once, ~4 min)"
    CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback \
      cargo install --quiet "wasm-bindgen-cli@$want" --root "$TOOLS" || die "cargo install wasm-bindgen-cli failed"
  fi
}

ensure_wasm_opt() {
  # Only release builds need wasm-opt; binaryen from npm ships it.
  if [ "$("$TOOLS/npm/bin/wasm-opt" --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
    log "installing wasm-opt (npm binaryen@$BINARYEN_VERSION)"
    npm install --silent -g --prefix "$TOOLS/npm" "binaryen@$BINARYEN_VERSION" >/dev/null || die "npm install binaryen failed"
  fi
}

PGVECTOR_VERSION=0.8.0
ensure_pgvector() {
  # pgvector has no Debian package here. Its source comes through the Go module proxy (which
  # serves any public repository's tagged tree as a module zip) and is built against the
  # installed PostgreSQL server, once.
  local pg_config ext major src
  pg_config="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/pg_config"
  [ -x "$pg_config" ] || die "no PostgreSQL server under /usr/lib/postgresql"
  ext="$("$pg_config" --sharedir)/extension/vector.control"
  if [ -f "$ext" ] && grep -q "default_version = '$PGVECTOR_VERSION'" "$ext"; then return 0; fi
  major="$("$pg_config" --version | awk '{print $2}' | cut -d. -f1)"
  apt_install "postgresql-server-dev-$major" make gcc
  command -v go >/dev/null 2>&1 || apt_install golang-go
  log "building pgvector $PGVECTOR_VERSION (source from the Go module proxy)"
  src="$(GOMODCACHE="$CACHE/gomod" GOFLAGS=-modcacherw go mod download -json "github.com/pgvector/pgvector@v$PGVECTOR_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" || die "cannot fetch pgvector source"
  rm -rf "$CACHE/pgvector-build" && cp -r "$src" "$CACHE/pgvector-build" && chmod -R u+w "$CACHE/pgvector-build"
  (cd "$CACHE/pgvector-build" && make -s with_llvm=no PG_CONFIG="$pg_config" OPTFLAGS="" >/dev/null \
    && $SUDO make -s install with_llvm=no PG_CONFIG="$pg_config" >/dev/null) || die "pgvector build failed"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() {
  # wait_http URL SECONDS
  local url="$1" secs="$2" i=0
  while [ "$i" -lt $((secs * 5)) ]; do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2; i=$((i + 1))
  done
  return 1
}
