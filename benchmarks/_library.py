"""The library benchmark, run by bench.py as its own warm process:

    /usr/bin/python3 -I benchmarks/_library.py ROOT RUNS WARMUP SLUG

Times ``start_job`` + ``finish_job`` (a real POST to the loopback receiver named by
the configuration in the environment), a bare HTTP round trip to the same receiver
on a raw socket (what any client must pay), and ``config.load`` (what
``finish_job`` re-reads on every call), interleaved. Then the durable writes: the
in-progress record ``start`` writes (``files.atomic_write``, fsync of file and directory)
with and without fsync, and ``finish``'s spool write-ahead and its removal
(``spool.hold`` + ``Held.done``) as it is (no fsync) and with an fsync of file and
directory added, in the data directory, in alternating blocks. Prints one JSON object.
"""

import json
import os
import socket
import statistics
import sys
import time

ROOT, RUNS, WARMUP, SLUG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, ROOT)

from seestack_systemd.settings import config as config_mod  # noqa: E402
from seestack_systemd import finish_job, start_job  # noqa: E402
from seestack_systemd.state import new_run_id  # noqa: E402

cfg = config_mod.load(os.environ)
endpoint = cfg.endpoint_parsed()
key = cfg.require_key()


def raw_request(run_id: str) -> bytes:
    body = json.dumps({
        "slug": SLUG, "status": "success", "durationMs": 0, "runId": run_id,
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "sdk": {"name": "seestack-systemd", "version": "0.1.0"},
    }, separators=(",", ":")).encode()
    return (
        f"POST {endpoint.path}/v1/cron/heartbeats HTTP/1.1\r\nHost: {endpoint.host}:{endpoint.port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"User-Agent: seestack-systemd/0.1.0 (bench raw socket)\r\nIdempotency-Key: {run_id}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def raw_round_trip(request: bytes) -> None:
    """connect, send, read the whole answer, close: the HTTP floor of one heartbeat."""
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=10)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("receiver closed the connection early")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 202"):
            raise RuntimeError(f"receiver answered {head[:40]!r}")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    finally:
        sock.close()


lib, raw, cfg_load = [], [], []
perf = time.perf_counter
for i in range(WARMUP + RUNS):
    t0 = perf()
    handle = start_job(SLUG)
    delivered = finish_job(handle, "success", "bench")
    t1 = perf()
    if not delivered:
        raise SystemExit("finish_job did not deliver: is the receiver up?")
    request = raw_request(new_run_id())
    t2 = perf()
    raw_round_trip(request)
    t3 = perf()
    config_mod.load(os.environ)
    t4 = perf()
    if i >= WARMUP:
        lib.append(t1 - t0)
        raw.append(t3 - t2)
        cfg_load.append(t4 - t3)



def durable_writes() -> dict:
    """Median and p95 (µs) of each way to write, in blocks of 10 taking turns (an fsync
    right after a write without one would flush it too, and blur the two)."""
    from seestack_systemd.delivery import spool
    from seestack_systemd.files import atomic_write, secure_dir

    record = ('{"runId":"%s","slug":"%s","startedAt":1765000000.123,"bootId":"%s","host":"bench",'
              '"source":{"systemd":{"unit":"bench.service","invocationId":"%s"}}}')
    where = {name: secure_dir(os.path.join(cfg.data_dir, f"bench-{name}")) for name in ("record", "spool")}

    def record_write(durable: bool) -> None:
        run_id = new_run_id()
        name = run_id + ".json"
        atomic_write(where["record"], name, (record % (run_id, SLUG, "0" * 32, "0" * 32)).encode(), durable=durable)
        os.unlink(os.path.join(where["record"], name))

    def spool_write(fsync: bool) -> None:
        run_id = new_run_id()
        held = spool.hold(where["spool"], run_id, raw_request(run_id), time.time())
        if fsync:
            os.fsync(held.fd)
            dfd = os.open(where["spool"], os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)
        held.done()

    cases = {"record_fsync": lambda: record_write(True), "record_nofsync": lambda: record_write(False),
             "spool_asis": lambda: spool_write(False), "spool_fsync": lambda: spool_write(True)}
    took: dict = {name: [] for name in cases}
    for block in range(2 + RUNS // 10):
        for name, case in cases.items():
            for _ in range(10):
                t0 = perf()
                case()
                if block >= 2:
                    took[name].append(perf() - t0)
    for path in where.values():
        os.rmdir(path)
    return {name: {"median_us": statistics.median(v) * 1e6,
                   "p95_us": statistics.quantiles(v, n=20)[-1] * 1e6} for name, v in took.items()}


med = statistics.median
print(json.dumps({
    "runs": RUNS,
    "lib_us": med(lib) * 1e6,
    "raw_us": med(raw) * 1e6,
    "config_load_us": med(cfg_load) * 1e6,
    "own_us": (med(lib) - med(raw)) * 1e6,
    "durable": durable_writes(),
}))
