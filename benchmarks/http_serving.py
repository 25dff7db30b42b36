"""HTTP serving: ``duanka serve`` against ``mlflow models serve``: ``python -m benchmarks.http_serving``.

Each server runs in its own process, one worker, pinned to one CPU (``taskset -c 1``); the clients run in this
process, pinned to the other CPU: ``--clients`` (8) asyncio connections on loopback, each with HTTP/1.1 keep-alive,
each sending a bounded number of requests one after another (a closed loop: a client sends its next request
when the answer to the last has arrived). Two shapes: one record per request, and 100 records per request; the
records are the texts of ``data/holdout.csv`` in order. Every answer is checked (status 200, the number of results);
latency is measured per request from the first byte sent to the last byte read. Reported: requests/s, posts/s
(records scored per second), p50/p90/p99/max latency, and posts per CPU-second of the server's process tree (from
``/proc``: the capacity of one busy core, less disturbed than wall-clock rates when other work shares the machine).
Results go to ``benchmarks/results/http_serving.md``/``.json``.

Servers:

* ``duanka serve`` — the command itself (uvicorn picks uvloop and httptools when they are installed);
* ``duanka serve, asyncio + h11`` — the same app under uvicorn's pure-Python loop and parser (``--loop asyncio
  --http h11``), to show what uvloop and httptools are worth;
* ``mlflow models serve`` — the registered champion (``models:/duanka@champion`` in ``./mlruns``) with
  ``--env-manager local``, the same Scorer behind MLflow's pyfunc server (``/invocations``, ``dataframe_records``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import save_report

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
HOLDOUT = REPO_ROOT / "data" / "holdout.csv"
MODEL = REPO_ROOT / "models" / "duanka"
TRACKING_URI = f"sqlite:///{REPO_ROOT / 'mlruns' / 'mlflow.db'}"


# ---------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """``command`` under ``taskset -c cpu`` when taskset exists and a CPU is given."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *command] if taskset and cpu is not None else command


def server_commands(model: str, mlflow_model: str, port: int, kind: str) -> tuple[list[str], str, dict[str, str]]:
    """(command, readiness path, extra environment) of one server kind."""
    bin_dir = str(Path(sys.executable).parent)
    if kind == "duanka":
        duanka = shutil.which("duanka", path=bin_dir) or "duanka"
        command = [duanka, "serve", "--model", model, "--port", str(port), "--workers", "1"]
        return command, "/ready", {}
    if kind == "duanka_h11":
        config = {"model": model, "scorer_options": {}}
        command = [sys.executable, "-m", "uvicorn", "duanka.adapters.http_app:app_from_environment", "--factory",
                   "--port", str(port), "--loop", "asyncio", "--http", "h11", "--no-access-log"]  # fmt: skip
        return command, "/ready", {"DUANKA_SERVE_CONFIG": json.dumps(config)}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", mlflow_model, "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    # mlflow starts uvicorn from PATH: this interpreter's bin directory first, as an activated venv does
    env = {"MLFLOW_TRACKING_URI": TRACKING_URI, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    return command, "/ping", env


class Server:
    """One server process, started pinned, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, kind: str, args: argparse.Namespace, log_dir: Path) -> None:
        self.kind, self.port = kind, free_port()
        command, self.ready_path, extra = server_commands(args.model, args.mlflow_model, self.port, kind)
        self.log_path = log_dir / f"{kind}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            pinned(command, args.server_cpu),
            env={**os.environ, **extra, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )

    def wait_ready(self, timeout: float = 180.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}: see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2):
                    return time.monotonic() - started
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.kind} not ready after {timeout:.0f} s: see {self.log_path}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)
        self.log.close()


# ---------------------------------------------------------------------------------------------- clients
def request_bytes(kind: str, port: int, texts: list[str], start: int) -> bytes:
    """One POST of ``len(texts)`` records as ``kind`` wants it."""
    ids = [f"id-{start + i}" for i in range(len(texts))]
    if kind == "mlflow":
        path, payload = "/invocations", {"dataframe_records": [{"text": t, "data_id": d} for t, d in zip(texts, ids)]}
    elif len(texts) == 1:
        path, payload = "/score", {"text": texts[0], "data_id": ids[0]}
    else:
        path, payload = "/score/batch", {"records": [{"text": t, "data_id": d} for t, d in zip(texts, ids)]}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), None)
    if length is None:
        raise RuntimeError(f"response without Content-Length: {lines[:6]}")
    return status, await reader.readexactly(length)


def result_count(kind: str, body: bytes, records: int) -> int:
    payload = json.loads(body)
    if kind == "mlflow":
        return len(payload["predictions"])
    return 1 if records == 1 and "label" in payload else len(payload["results"])


async def client(kind: str, port: int, payloads: list[bytes], records: int, deadline: float) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies, errors = [], 0
    try:
        for i, payload in enumerate(payloads):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            writer.write(payload)
            status, body = await read_response(reader)
            latencies.append(time.perf_counter() - started)
            # check a sample of answers fully (parsing every one would load the client's CPU)
            if status != 200 or (i % 10 == 0 and result_count(kind, body, records) != records):
                errors += 1
    finally:
        writer.close()
    return {"latencies": latencies, "errors": errors}


def load(kind: str, port: int, texts: list[str], records: int, per_client: int, clients: int, cap_s: float) -> dict:
    """``clients`` keep-alive connections, ``per_client`` requests of ``records`` records each."""
    payloads = [
        [request_bytes(kind, port, _window(texts, (c * per_client + i) * records, records), i) for i in range(n)]
        for c, n in enumerate([per_client] * clients)
    ]

    async def run() -> list[dict[str, Any]]:
        deadline = time.monotonic() + cap_s
        return await asyncio.gather(*(client(kind, port, p, records, deadline) for p in payloads))

    started = time.perf_counter()
    done = asyncio.run(run())
    wall = time.perf_counter() - started
    latencies = sorted(x for d in done for x in d["latencies"])
    count = len(latencies)
    quantile = lambda q: 1000 * latencies[min(count - 1, int(q * count))]  # noqa: E731
    return {
        "records_per_request": records,
        "clients": clients,
        "requests": count,
        "errors": sum(d["errors"] for d in done),
        "wall_s": wall,
        "requests_per_s": count / wall,
        "posts_per_s": count * records / wall,
        "p50_ms": quantile(0.50),
        "p90_ms": quantile(0.90),
        "p99_ms": quantile(0.99),
        "max_ms": 1000 * latencies[-1],
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


def _window(texts: list[str], start: int, size: int) -> list[str]:
    return [texts[(start + i) % len(texts)] for i in range(size)]


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds used so far by ``root`` and its live descendants (``/proc/<pid>/stat``)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (parent, _) in stats.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- run
def measure(kind: str, args: argparse.Namespace, texts: list[str], log_dir: Path) -> dict[str, Any]:
    server = Server(kind, args, log_dir)
    try:
        entry: dict[str, Any] = {"kind": kind, "ready_s": server.wait_ready()}
        for name, records, per_client in (("single", 1, args.single), ("batch100", 100, args.batch)):
            warm = max(1, per_client // 10)
            load(kind, server.port, texts, records, warm, args.clients, args.cap_s)
            cpu_before = tree_cpu_s(server.process.pid)
            entry[name] = run = load(kind, server.port, texts, records, per_client, args.clients, args.cap_s)
            run["server_cpu_s"] = tree_cpu_s(server.process.pid) - cpu_before
            run["requests_per_cpu_s"] = run["requests"] / run["server_cpu_s"] if run["server_cpu_s"] else None
            run["posts_per_cpu_s"] = run["requests_per_cpu_s"] and run["requests_per_cpu_s"] * records
            entry[name]["load_after"] = os.getloadavg()[0]
            print(f"  {kind} {name}: {_line(entry[name])}", file=sys.stderr, flush=True)
        return entry
    finally:
        server.stop()


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['requests']} requests, {r['errors']} errors, {r['requests_per_s']:,.0f} req/s, "
        f"{r['posts_per_s']:,.0f} posts/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms; "
        f"server CPU {r['server_cpu_s']:.1f} s ({_per_cpu(r)} posts per CPU-second)"
    )


def _per_cpu(r: dict[str, Any]) -> str:
    return "-" if not r.get("posts_per_cpu_s") else f"{r['posts_per_cpu_s']:,.0f}"


TITLES = {
    "duanka": "`duanka serve`",
    "duanka_h11": "`duanka serve`, asyncio + h11",
    "mlflow": "`mlflow models serve`",
}


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        "# HTTP serving: `duanka serve` and `mlflow models serve`",
        "",
        f"- date: {results['date']}; machine: {results['machine']}; git {results['git_commit']}",
        f"- each server: one worker, pinned to CPU {s['server_cpu']}; clients: {s['clients']} asyncio keep-alive "
        f"connections on loopback in one process pinned to CPU {s['client_cpu']}, closed loop",
        f"- requests per client: {s['single']} single-record, {s['batch']} of 100 records (after a tenth as many "
        f"to warm up); texts: {s['texts']} ({s['text_count']} posts, {s['mean_chars']:.0f} characters on average)",
        f"- 1-minute load average at start: {results['load_before']:.2f} (other work on the machine inflates "
        "latency; the load after each run is in the table)",
        f"- uvicorn {results['versions']['uvicorn']}, starlette {results['versions']['starlette']}, uvloop "
        f"{results['versions']['uvloop']}, httptools {results['versions']['httptools']}, mlflow "
        f"{results['versions']['mlflow']}",
        "",
        "| server | request | requests/s | posts/s | p50 ms | p90 ms | p99 ms | max ms | errors | posts per server "
        "CPU-s | load after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in results["servers"]:
        if "error" in entry:
            lines.append(f"| {TITLES[entry['kind']]} | *not measured: {entry['error']}* | | | | | | | | | |")
            continue
        for name in ("single", "batch100"):
            r = entry[name]
            lines.append(
                f"| {TITLES[entry['kind']]} | {r['records_per_request']} record(s) | {r['requests_per_s']:,.0f} | "
                f"{r['posts_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{r['max_ms']:.1f} | {r['errors']} | {_per_cpu(r)} | {r['load_after']:.2f} |"
            )
    lines += [
        "",
        "Targets (issue 23): ≥ 1,000 single-record requests/s per core with p99 ≤ 10 ms; ≥ 5,000 posts/s per core "
        "with 100-record requests. Posts per server CPU-second (the server's process tree, from /proc) is the "
        "capacity of one fully used core; it moves less than requests/s when other work shares the machine.",
    ]
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("uvicorn", "starlette", "uvloop", "httptools", "mlflow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import _git_commit
    from benchmarks.spark_bench import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(MODEL), help="artifact directory for duanka serve")
    parser.add_argument("--mlflow-model", default="models:/duanka@champion", help="model URI for mlflow models serve")
    parser.add_argument("--servers", default="duanka,duanka_h11,mlflow", help="comma-separated: " + ", ".join(TITLES))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--single", type=int, default=500, help="single-record requests per client")
    parser.add_argument("--batch", type=int, default=40, help="100-record requests per client")
    parser.add_argument("--cap-s", type=float, default=60.0, help="stop a run after this many seconds")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity") and args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    with HOLDOUT.open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "git_commit": _git_commit(REPO_ROOT),
        "versions": _versions(),
        "load_before": os.getloadavg()[0],
        "settings": {
            **{k: v for k, v in vars(args).items() if k != "output_dir"},
            "texts": "data/holdout.csv",
            "text_count": len(texts),
            "mean_chars": sum(map(len, texts)) / len(texts),
        },
        "servers": [],
    }
    log_dir = Path(tempfile.mkdtemp(prefix="duanka-http-bench-"))  # server logs, kept for a look after a failure
    for kind in args.servers.split(","):
        print(f"{kind} ...", file=sys.stderr, flush=True)
        try:
            results["servers"].append(measure(kind, args, texts, log_dir))
        except (RuntimeError, OSError) as exc:
            print(f"  {kind}: not measured: {exc}", file=sys.stderr, flush=True)
            results["servers"].append({"kind": kind, "error": str(exc)})
    save_report(results, report(results), Path(args.output_dir), "http_serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
