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
import shutil
import subprocess
import tempfile
import time

from benchlib import Server, peak_rss_mib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=100_000)
    ap.add_argument("--purchases", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="tf-bench-")
    server = Server(work)
    url, key, ws = server.url, server.key, server.ws
    try:
        # The workspace's folder, then the purchases in files of equal size.
        folder = server.folder("bench", "purchases")
        per_file = args.purchases // args.files
        for f in range(args.files):
            with open(os.path.join(folder, f"part-{f:03}.ndjson"), "w") as out:
                for n in range(f * per_file, (f + 1) * per_file):
                    out.write(
                        '{"timestamp":"2026-11-%02d 12:00:00","user_id":"p%06d","price":%d.5,"platform":"Steam"}\n'
                        % (1 + n % 28, n % args.players, n % 50)
                    )
        models = server.gql('{ p: model(slug: "players") { id } b: model(slug: "purchases") { id relationships { id toModelId } } }')
        players = models["p"]["id"]
        purchases = models["b"]["id"]
        rel = next(r["id"] for r in models["b"]["relationships"] if r["toModelId"] == players)

        files, load_s = server.load_folder("bench", args.files)
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
            traits = server.gql("{ traits { nodes { name runs { nodes { status durationMs rowsComputed } } } } }")["traits"]["nodes"]
            runs = [(t["name"], r) for t in traits for r in t["runs"]["nodes"]]
            if len(runs) >= 6 and all(r["status"] in ("succeeded", "failed") for _, r in runs):
                break
            time.sleep(0.5)
        total_s = time.time() - started
        for name, r in runs:
            print(f"run {name:16} {r['status']:9} {r['durationMs']:>6} ms  {r['rowsComputed']} values")
        print(f"six traits: all finished {total_s:.1f} s after the creates; succeeded {sum(r['status'] == 'succeeded' for _, r in runs)}/6")
        print(f"peak RSS of the server: {peak_rss_mib(server.process.pid):.0f} MiB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
