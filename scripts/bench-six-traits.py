#!/usr/bin/env python3
"""Benchmark of the embedded default under its own load (issue 12).

Starts the release `traitforge` on a fresh SQLite file with its in-process
worker, writes PLAYERS players' PURCHASES purchases as NDJSON files into a
local source folder, loads them through a scan, then creates six aggregation
traits at once and waits for every run. Prints the load time, each run's
duration and status, and the server's peak RSS (VmHWM).

    cargo build --release -p api     # or CARGO_TARGET_DIR=… and TRAITFORGE_BIN=…
    scripts/bench-six-traits.py [--players 100000] [--purchases 1000000]
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(url, key, path, body=None, method=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + key)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def gql(url, key, query, variables=None):
    out = call(url, key, "/graphql", {"query": query, "variables": variables or {}})
    if out.get("errors"):
        sys.exit(f"GraphQL error: {out['errors']}")
    return out["data"]


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=100_000)
    ap.add_argument("--purchases", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="tf-bench-")
    root = os.path.join(work, "sources")
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite://{work}/bench.db?mode=rwc",
        BIND=f"127.0.0.1:{port}",
        LOCAL_SOURCE_ROOT=root,
        RUST_LOG="warn",
    )
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [os.environ.get("TRAITFORGE_BIN", os.path.join(ROOT, "target/release/traitforge"))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(os.path.join(work, "server.log"), "w"),
        text=True,
    )
    try:
        ws = key = None
        while key is None:
            line = server.stdout.readline()
            if not line:
                sys.exit("server ended before printing its key: see " + work)
            if m := re.search(r'Created workspace "default": (\S+)', line):
                ws = m.group(1)
            if m := re.search(r"store it now\): (\S+)", line):
                key = m.group(1)
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/healthz")
                break
            except OSError:
                time.sleep(0.1)

        # The workspace's folder, then the purchases in files of equal size.
        folder = os.path.join(root, ws, "bench", "purchases")
        os.makedirs(folder)
        per_file = args.purchases // args.files
        for f in range(args.files):
            with open(os.path.join(folder, f"part-{f:03}.ndjson"), "w") as out:
                for n in range(f * per_file, (f + 1) * per_file):
                    out.write(
                        '{"timestamp":"2026-11-%02d 12:00:00","user_id":"p%06d","price":%d.5,"platform":"Steam"}\n'
                        % (1 + n % 28, n % args.players, n % 50)
                    )
        models = gql(url, key, '{ p: model(slug: "players") { id } b: model(slug: "purchases") { id relationships { id toModelId } } }')
        players = models["p"]["id"]
        purchases = models["b"]["id"]
        rel = next(r["id"] for r in models["b"]["relationships"] if r["toModelId"] == players)

        path = "bench"  # inside the workspace's own folder, LOCAL_SOURCE_ROOT/<workspace id>/
        source = gql(
            url,
            key,
            'mutation($c: JSON!) { createDataSource(input: { name: "bench", kind: "local", config: $c }) { id } }',
            {"c": {"path": path}},
        )["createDataSource"]["id"]
        started = time.time()
        gql(url, key, "mutation($id: ID!) { scanDataSource(id: $id) { id } }", {"id": source})
        while True:
            files = gql(url, key, "query($id: ID!) { dataSource(id: $id) { files { status rowsLoaded } } }", {"id": source})["dataSource"]["files"]
            if len(files) == args.files and all(f["status"] in ("loaded", "failed") for f in files):
                break
            time.sleep(0.5)
        load_s = time.time() - started
        loaded = sum(f["rowsLoaded"] for f in files)
        print(f"load: {loaded} rows in {args.files} files, {load_s:.1f} s ({loaded / load_s:,.0f} rows/s); statuses {sorted(set(f['status'] for f in files))}")

        configs = [
            ("Purchases", {"aggregation": "count"}),
            ("Spend", {"aggregation": "sum", "column": "price"}),
            ("Avg price", {"aggregation": "avg", "column": "price"}),
            ("Min price", {"aggregation": "min", "column": "price"}),
            ("Max price", {"aggregation": "max", "column": "price"}),
            ("Priced purchases", {"aggregation": "count", "column": "price"}),
        ]
        started = time.time()
        procs = []
        for name, cfg in configs:
            cfg = dict(cfg, source_model_id=purchases, relationship_id=rel)
            body = {"name": name, "parent_model_id": players, "trait_type": "aggregation", "config": cfg, "result_type": "number"}
            procs.append(
                subprocess.Popen(
                    ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                     f"{url}/api/v1/workspaces/{ws}/traits", "-H", f"Authorization: Bearer {key}",
                     "-H", f"X-Workspace-ID: {ws}", "-H", "Content-Type: application/json", "-d", json.dumps(body)],
                    stdout=subprocess.PIPE, text=True)
            )
        codes = [p.communicate()[0] for p in procs]
        print(f"six creates answered {codes} in {time.time() - started:.1f} s")
        while True:
            traits = gql(url, key, "{ traits { name runs { status durationMs rowsComputed } } }")["traits"]
            runs = [(t["name"], r) for t in traits for r in t["runs"]]
            if len(runs) >= 6 and all(r["status"] in ("succeeded", "failed") for _, r in runs):
                break
            time.sleep(0.5)
        total_s = time.time() - started
        for name, r in runs:
            print(f"run {name:16} {r['status']:9} {r['durationMs']:>6} ms  {r['rowsComputed']} values")
        print(f"six traits: all finished {total_s:.1f} s after the creates; succeeded {sum(r['status'] == 'succeeded' for _, r in runs)}/6")
        print(f"peak RSS of the server: {peak_rss_mib(server.pid):.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
