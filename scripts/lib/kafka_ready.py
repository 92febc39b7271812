"""Waits until a Kafka broker answers a Metadata request that lists at least one broker.

Usage: kafka_ready.py HOST PORT TIMEOUT_SECONDS. Standard library only: Metadata v4
(non-flexible, supported by Kafka 4.x) asking for no topics.
"""
import socket
import struct
import sys
import time


def metadata_brokers(host: str, port: int) -> int:
    client_id = b"lookout-ready"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack(">i", 0) + b"\x00"  # topics: empty array; allow_auto_topic_creation=false
    msg = header + body
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    # correlation id (4), throttle_time_ms (4), brokers array length (4)
    corr, _throttle, n_brokers = struct.unpack(">iii", resp[:12])
    if corr != 1:
        raise RuntimeError("bad correlation id")
    return n_brokers


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def main() -> int:
    host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if metadata_brokers(host, port) >= 1:
                return 0
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.3)
    print(f"kafka not ready: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
