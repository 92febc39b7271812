# Lookout container image. Multi-stage: the build stage compiles the server and the site
# (wasm, JS, CSS) with tools from the package registries only (cargo-leptos is built with
# `no_downloads`; wasm-opt comes from npm's binaryen). Not built in CI: no container engine
# runs there. The runtime needs DATABASE_URL (no embedded PostgreSQL in the image).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm pkg-config build-essential brotli \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-unknown-unknown
RUN cargo install cargo-leptos@0.3.7 --locked --features no_downloads
# Must equal the wasm-bindgen version pinned in Cargo.toml / Cargo.lock.
RUN CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli@0.2.130
RUN npm install -g binaryen@132.0.0
WORKDIR /src
COPY . .
# The binary with hash.txt beside it (the content-hashed bundle names), the site with
# brotli and gzip copies of its wasm, JS, CSS and SVG (see scripts/lib/common.sh).
RUN cargo leptos build --release \
 && find target/site -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.svg' \) \
      -exec brotli -q 11 -f -k {} \; -exec sh -c 'gzip -9 -n -c "$1" > "$1.gz"' _ {} \; \
 && mkdir -p /out \
 && cp target/release/lookout target/release/hash.txt /out/ \
 && cp -r target/site /out/site

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv/lookout --shell /usr/sbin/nologin lookout
COPY --from=build /out/lookout /out/hash.txt /usr/local/bin/
COPY --from=build /out/site /srv/lookout/site
ENV LEPTOS_SITE_ADDR=0.0.0.0:8080 \
    LEPTOS_SITE_ROOT=/srv/lookout/site \
    LOOKOUT_LOG_FORMAT=json
USER lookout
WORKDIR /srv/lookout
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/lookout"]
CMD ["serve"]
