#!/usr/bin/env bash
# From ../shared/k8s (the verified recipe), with the timing printed by awk instead of bc.
# Start a throw-away etcd + kube-apiserver on loopback only (envtest style).
# Usage: start-cluster.sh [STATE_DIR]
#   env: K8S_BIN_DIR (dir with kube-apiserver, etcd, ... ; default ./bin next to this script),
#        KUBE_APISERVER / ETCD / KUBE_CONTROLLER_MANAGER / KUBE_SCHEDULER / KWOK (override single binaries),
#        WITH_KCM=1, WITH_SCHEDULER=1, WITH_KWOK=1 (optional components), KUBE_APISERVER_EXTRA_FLAGS
# Writes: $STATE_DIR/kubeconfig, $STATE_DIR/env (KUBECONFIG, APISERVER_URL, TOKEN, pids),
#         $STATE_DIR/etcd.pid, $STATE_DIR/apiserver.pid, logs.
# Stop with: stop-cluster.sh STATE_DIR
# The *_EXTRA_FLAGS variables hold several flags: they are split on purpose.
# shellcheck disable=SC2086
set -euo pipefail

STATE_DIR="${1:-$(mktemp -d /tmp/kube-test.XXXXXX)}"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
BIN_DIR="${K8S_BIN_DIR:-$(cd "$(dirname "$0")" && pwd)/bin}"
KUBE_APISERVER="${KUBE_APISERVER:-$BIN_DIR/kube-apiserver}"
if [ -z "${ETCD:-}" ]; then
  if [ -x "$BIN_DIR/etcd" ]; then ETCD="$BIN_DIR/etcd"; else ETCD="$(command -v etcd)"; fi
fi
PKI="$STATE_DIR/pki"
mkdir -p "$PKI"

fail() {  # print the reason, stop what this script started (by PID), exit 1
  echo "start-cluster: $*" >&2
  for f in apiserver.pid etcd.pid; do
    [ -f "$STATE_DIR/$f" ] && kill "$(cat "$STATE_DIR/$f")" 2>/dev/null
  done
  exit 1
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
ETCD_CLIENT_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
while [ "$ETCD_PEER_PORT" = "$ETCD_CLIENT_PORT" ]; do ETCD_PEER_PORT=$(free_port); done
while [ "$API_PORT" = "$ETCD_CLIENT_PORT" ] || [ "$API_PORT" = "$ETCD_PEER_PORT" ]; do API_PORT=$(free_port); done

T0=$(date +%s.%N)

# --- etcd (data dir on tmpfs when available: etcd 3.4 has no --unsafe-no-fsync) ---
ETCD_DATA="$(mktemp -d /dev/shm/etcd-data.XXXXXX 2>/dev/null || mktemp -d "$STATE_DIR/etcd-data.XXXXXX")"
echo "$ETCD_DATA" > "$STATE_DIR/etcd-data-dir"
"$ETCD" \
  --name default \
  --data-dir "$ETCD_DATA" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
  --logger zap --log-level warn \
  > "$STATE_DIR/etcd.log" 2>&1 &
echo $! > "$STATE_DIR/etcd.pid"

# --- certificates (CA + leaf: rustls rejects a CA cert used as the server cert) ---
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=test-ca" \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" 2>/dev/null
cat > "$PKI/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1
EOF
openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
  -days 3650 -extfile "$PKI/ext.cnf" -out "$PKI/apiserver.crt" 2>/dev/null
openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

TOKEN="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# token,user,uid,"group1,group2"
echo "$TOKEN,admin,admin-uid,\"system:masters\"" > "$PKI/tokens.csv"

# wait for etcd
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q true; then break; fi
  kill -0 "$(cat "$STATE_DIR/etcd.pid")" 2>/dev/null || { cat "$STATE_DIR/etcd.log" >&2; fail "etcd died"; }
  sleep 0.1
done
T_ETCD=$(date +%s.%N)

# --- kube-apiserver ---
"$KUBE_APISERVER" \
  --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address 127.0.0.1 \
  --advertise-address 127.0.0.1 \
  --secure-port "$API_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" \
  --tls-private-key-file "$PKI/apiserver.key" \
  --cert-dir "$PKI" \
  --service-account-issuer "https://127.0.0.1:$API_PORT" \
  --service-account-key-file "$PKI/sa.pub" \
  --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 \
  --authorization-mode RBAC \
  --token-auth-file "$PKI/tokens.csv" \
  --disable-admission-plugins ServiceAccount \
  --allow-privileged=true \
  --endpoint-reconciler-type none \
  --profiling=false \
  ${KUBE_APISERVER_EXTRA_FLAGS:-} \
  > "$STATE_DIR/apiserver.log" 2>&1 &
echo $! > "$STATE_DIR/apiserver.pid"

ok=0
for _ in $(seq 1 600); do
  if curl -fsS --cacert "$PKI/ca.crt" "https://127.0.0.1:$API_PORT/readyz" 2>/dev/null | grep -q '^ok$'; then ok=1; break; fi
  kill -0 "$(cat "$STATE_DIR/apiserver.pid")" 2>/dev/null || { tail -50 "$STATE_DIR/apiserver.log" >&2; fail "kube-apiserver died"; }
  sleep 0.1
done
T_READY=$(date +%s.%N)
[ "$ok" = 1 ] || { tail -50 "$STATE_DIR/apiserver.log" >&2; fail "kube-apiserver not ready after 60s"; }

cat > "$STATE_DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: test
  context:
    cluster: test
    user: admin
    namespace: default
current-context: test
EOF

cat > "$STATE_DIR/env" <<EOF
export KUBECONFIG=$STATE_DIR/kubeconfig
export APISERVER_URL=https://127.0.0.1:$API_PORT
export APISERVER_TOKEN=$TOKEN
export APISERVER_CACERT=$PKI/ca.crt
export ETCD_URL=http://127.0.0.1:$ETCD_CLIENT_PORT
export ETCD_PID=$(cat "$STATE_DIR/etcd.pid")
export APISERVER_PID=$(cat "$STATE_DIR/apiserver.pid")
EOF
# --- optional: kube-controller-manager (Deployments -> ReplicaSets -> Pods, default ServiceAccounts, GC, ...) ---
if [ "${WITH_KCM:-0}" = 1 ]; then
  "${KUBE_CONTROLLER_MANAGER:-$BIN_DIR/kube-controller-manager}" \
    --kubeconfig "$STATE_DIR/kubeconfig" \
    --authentication-kubeconfig "$STATE_DIR/kubeconfig" \
    --authorization-kubeconfig "$STATE_DIR/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 \
    --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --allocate-node-cidrs=false \
    --use-service-account-credentials=false \
    ${KCM_EXTRA_FLAGS:-} \
    > "$STATE_DIR/kcm.log" 2>&1 &
  echo $! > "$STATE_DIR/kcm.pid"
fi
# --- optional: kube-scheduler (binds Pods to Nodes, e.g. kwok's fake nodes) ---
if [ "${WITH_SCHEDULER:-0}" = 1 ]; then
  "${KUBE_SCHEDULER:-$BIN_DIR/kube-scheduler}" \
    --kubeconfig "$STATE_DIR/kubeconfig" \
    --authentication-kubeconfig "$STATE_DIR/kubeconfig" \
    --authorization-kubeconfig "$STATE_DIR/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 \
    --leader-elect=false \
    > "$STATE_DIR/scheduler.log" 2>&1 &
  echo $! > "$STATE_DIR/scheduler.pid"
fi
# --- optional: kwok (fake nodes: Ready nodes, Running pods, kubelet-like /containerLogs server) ---
# KWOK_CONFIG: multi-doc YAML with kwok Stage objects (default: $BIN_DIR/kwok-stages.yaml from build-k8s-bins.sh);
# KWOK_EXTRA_CONFIG: optional extra file, e.g. ClusterLogs objects that map containers to CRI-format log files.
# Nodes with annotation kwok.x-k8s.io/node=fake are managed. Node IP is 127.0.0.1 so that
# `kubectl logs` makes the apiserver dial kwok's server on loopback only.
if [ "${WITH_KWOK:-0}" = 1 ]; then
  KWOK_PORT=$(free_port)
  "${KWOK:-$BIN_DIR/kwok}" \
    --kubeconfig "$STATE_DIR/kubeconfig" \
    -c "${KWOK_CONFIG:-$BIN_DIR/kwok-stages.yaml}" ${KWOK_EXTRA_CONFIG:+-c "$KWOK_EXTRA_CONFIG"} \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --node-port "$KWOK_PORT" --server-address "127.0.0.1:$KWOK_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --cidr 10.244.0.0/24 --node-lease-duration-seconds 40 \
    > "$STATE_DIR/kwok.log" 2>&1 &
  echo $! > "$STATE_DIR/kwok.pid"
fi

printf 'etcd ready after %.2fs, apiserver /readyz ok after %.2fs (total %.2fs)\n' \
  "$(awk "BEGIN{print $T_ETCD - $T0}")" "$(awk "BEGIN{print $T_READY - $T_ETCD}")" "$(awk "BEGIN{print $T_READY - $T0}")"
echo "STATE_DIR=$STATE_DIR"
