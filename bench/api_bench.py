"""Latency and throughput of `riskgraph serve` at 1, 10 and 50 concurrent clients.

Starts the service as its own process on 127.0.0.1 (as deployed: `python -m serving.cli serve`)
against the configured, already scored Neo4j graph, waits until /readyz, then measures in
this process, with one keep-alive HTTP connection per client thread (``Lean``):

- ``baseline``: one raw parameterised Cypher read of the stored score over Bolt (no HTTP);
- ``score``: GET /v1/users/{id}/score (the stored score);
- ``score fresh``: GET …?fresh=true (the user rescored online against the snapshot);
- ``event``: POST /v1/events with one new paid order, upserted and the user rescored.

Each HTTP row also prints the shares of its requests the service itself finished within 15,
50 and 100 ms (its /metrics histogram; with several workers, one worker's): the difference
to the client's percentiles is time spent queueing for a CPU on the shared machine.

Usage (with the graph of `riskgraph demo --users 10000` in the configured database):
    python bench/api_bench.py --requests 300
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import numpy as np

from serving.connect import open_store
from serving.settings import Settings

STORED = "MATCH (u:User {user_id: $id}) RETURN u.risk_score AS r, u.credit_score AS c"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ROUTES = {  # workload -> (route template, method) of the service's latency histogram
    "score (stored)": ("/v1/users/{user_id}/score", "GET"),
    "score fresh (online)": ("/v1/users/{user_id}/score", "GET"),
    "event + rescore": ("/v1/events", "POST"),
}


def server_histogram(base: str, route: tuple[str, str] | None) -> dict[str, float]:
    """The service's own latency histogram of ``route`` (cumulative counts by bound), from
    /metrics: the time inside the server, without the client's and the scheduler's share."""
    if route is None:
        return {}
    text = httpx.get(f"{base}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("riskgraph_request_seconds_bucket{") and (
            f'route="{route[0]}"' in line and f'method="{route[1]}"' in line
        ):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[bound] = float(line.rsplit(" ", 1)[1])
    return out


def stage_sums(base: str) -> dict[str, tuple[float, float]]:
    """The service's POST /v1/events stage histogram: (sum of seconds, count) per stage."""
    out: dict[str, list[float]] = {}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        for suffix, slot in (("_sum{", 0), ("_count{", 1)):
            if line.startswith("riskgraph_event_stage_seconds" + suffix):
                stage = line.split('stage="', 1)[1].split('"', 1)[0]
                out.setdefault(stage, [0.0, 0.0])[slot] = float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in out.items()}


def stage_line(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
               requests: int) -> str:  # fmt: skip
    """Mean milliseconds per request in each stage, as the service measured them."""
    parts = []
    for stage, (total, _) in after.items():
        spent = total - before.get(stage, (0.0, 0.0))[0]
        parts.append(f"{stage} {spent / requests * 1e3:.1f}")
    inside = sum(after[s][0] - before.get(s, (0.0, 0.0))[0] for s in after) / requests * 1e3
    return f"  service-side mean ms per event: {', '.join(parts)} (sum {inside:.1f})"


def within(before: dict[str, float], after: dict[str, float]) -> str:
    """Shares of the row's requests the server finished within 15, 50 and 100 ms."""
    total = after.get("+Inf", 0.0) - before.get("+Inf", 0.0)
    if not total:
        return ""
    shares = [(after.get(b, 0.0) - before.get(b, 0.0)) / total for b in ("0.015", "0.05", "0.1")]
    return "/".join(f"{x:.0%}" for x in shares)


class Lean:
    """One keep-alive HTTP/1.1 connection with the standard library's client: a fraction of
    httpx's CPU per request, which on two shared cores the service would otherwise pay for.
    A connection the server closed while idle (uvicorn's keep-alive timeout) is reopened and
    the request sent again, as httpx does (both requests are idempotent)."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.headers = {"X-API-Key": key}

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                resp.read()
                return resp.status
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> int:
        return self._send("GET", path, None, self.headers)

    def post(self, path: str, body: dict[str, object]) -> int:
        headers = {**self.headers, "content-type": "application/json"}
        return self._send("POST", path, json.dumps(body).encode(), headers)


def encoder_setting(settings: Settings) -> dict[str, str]:
    """``RISKGRAPH_ENCODE_INT8`` as the served model was trained (unless set): with the other
    encoder the service would re-encode every review (many minutes at 100k users) only to
    refuse the model's features at the end."""
    latest = settings.artifacts / "LATEST"
    if "RISKGRAPH_ENCODE_INT8" in os.environ or not latest.exists():
        return {}
    config = json.loads(
        (settings.artifacts / latest.read_text().strip() / "config.json").read_text()
    )
    return {"RISKGRAPH_ENCODE_INT8": str(str(config.get("text_model")).endswith("-int8")).lower()}


def measure(
    call: Callable[[int], None], clients: int, total: int, done: Callable[[], None] = lambda: None
) -> dict[str, float]:
    """Run ``total`` calls spread over ``clients`` threads (each calls ``done`` when it
    ends); latency percentiles and rate."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            started = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - started)
        done()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "rps": total / wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per row")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--workers", type=int, default=1, help="`riskgraph serve --workers`")
    parser.add_argument("--only", nargs="+", default=None, help="workloads to run (by prefix)")
    parser.add_argument("--ready-timeout", type=float, default=1800.0,
                        help="seconds to wait for /readyz (the snapshot of a 100k-user graph "
                             "takes minutes on a loaded machine)")  # fmt: skip
    args = parser.parse_args()
    settings = Settings()
    key = secrets.token_urlsafe(24)
    port = _port()
    env = {**os.environ, "RISKGRAPH_API_KEYS": key, **encoder_setting(settings)}
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--port", str(port),
         "--workers", str(args.workers)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        ready = 0  # several workers: each new connection may reach another one
        while True:
            try:
                ready = (
                    ready + 1 if httpx.get(f"{base}/readyz", timeout=5).status_code == 200 else 0
                )
            except httpx.HTTPError:
                ready = 0
            if ready >= 5 * args.workers:
                break
            if server.poll() is not None or time.perf_counter() - started > args.ready_timeout:
                raise SystemExit("the service did not become ready")
            time.sleep(1 if not ready else 0.05)
        ready_s = time.perf_counter() - started
        with open_store(settings, start=False) as store:
            rows = store.read("MATCH (u:User) WHERE u.risk_score IS NOT NULL "
                              "MATCH (u)-[:ORDERED]->(p:Product) WITH u, min(p.product_id) AS p "
                              "RETURN u.user_id AS u, p ORDER BY u.user_id")  # fmt: skip
            users = {"n": store.read("MATCH (u:User) RETURN count(u) AS n")[0]["n"]}
            ids = [r["u"] for r in rows]
            products = [r["p"] for r in rows]
            rng = np.random.default_rng(0)
            pick = rng.permutation(len(ids))
            local = threading.local()
            # keep-alive connections outlive the threads: the warm-up opens them, the measured
            # row reuses them (connection set-up is not part of a request's latency)
            idle: queue.LifoQueue[Lean] = queue.LifoQueue()

            def client() -> Lean:
                if not hasattr(local, "c"):
                    try:
                        local.c = idle.get_nowait()
                    except queue.Empty:
                        local.c = Lean(port, key)
                c: Lean = local.c
                return c

            def release() -> None:
                if hasattr(local, "c"):
                    idle.put(local.c)
                    del local.c

            failures: list[int] = []

            def check(status: int) -> None:
                if status != 200:  # counted, printed per row
                    failures.append(status)

            run = datetime.now(UTC).strftime("%H%M%S")
            now = datetime.now(UTC).isoformat()

            def user(i: int) -> str:
                return str(ids[pick[i % len(ids)]])

            def baseline(i: int) -> None:
                store.read(STORED, id=user(i))

            def stored(i: int) -> None:
                check(client().get(f"/v1/users/{user(i)}/score"))

            def fresh(i: int) -> None:
                check(client().get(f"/v1/users/{user(i)}/score?fresh=true"))

            calls: dict[str, Callable[[int], None]] = {
                "baseline (Bolt read)": baseline,
                "score (stored)": stored,
                "score fresh (online)": fresh,
            }

            def event(i: int) -> None:
                j = int(pick[i % len(ids)])
                order = {"order_id": f"bench-{run}-{i}", "user_id": ids[j],
                         "product_id": products[j], "amount": 25.0, "ts": now, "status": "paid"}  # fmt: skip
                check(client().post("/v1/events", {"orders": [order]}))

            calls["event + rescore"] = event
            print(f"graph: {users['n']} users; service ready in {ready_s:.0f} s; "
                  f"{args.requests} requests per row; {args.workers} server worker(s); "
                  "client and server on 127.0.0.1")  # fmt: skip
            if args.only:
                calls = {k: v for k, v in calls.items() if k.startswith(tuple(args.only))}
            print(
                f"{'workload':24} {'clients':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
                f"{'req/s':>8} {'non-200':>8} {'server <=15/50/100 ms':>21}  load average 1/5/15 min"
            )
            offset = 0
            for name, call in calls.items():
                for clients in args.clients:
                    measure(call, clients, max(20, 2 * clients), release)  # warm-up
                    shifted = (lambda c, o: lambda i: c(i + o))(call, offset)
                    failures.clear()
                    route = ROUTES.get(name) if args.workers == 1 else None  # per worker
                    before = server_histogram(base, route)
                    stages = stage_sums(base) if name.startswith("event") else {}
                    r = measure(shifted, clients, args.requests, release)
                    inside = within(before, server_histogram(base, route))
                    offset += args.requests
                    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                    print(f"{name:24} {clients:>7} {r['p50']:>8.1f} {r['p95']:>8.1f} "
                          f"{r['p99']:>8.1f} {r['rps']:>8.0f} {len(failures):>8} {inside:>21} "
                          f"  load {load}", flush=True)  # fmt: skip
                    if name.startswith("event") and args.workers == 1:
                        print(stage_line(stages, stage_sums(base), args.requests), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still in its lifespan start: SIGTERM is not heard
            server.kill()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
