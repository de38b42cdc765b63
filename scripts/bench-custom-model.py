#!/usr/bin/env python3
"""Benchmark of a custom model beside the built-in purchases table (issue 14).

Starts the release `traitforge` (SQLite by default, or --database-url),
loads the same PURCHASES rows of PLAYERS players twice through one local
source scan: into the built-in `purchases` folder and into the folder of an
`orders` model created through the API. Then count, sum and avg traits over
each model are refreshed ROUNDS times, alternating, one run at a time, and
the median run durations are compared: custom / built-in.

    cargo build --release -p api     # or CARGO_TARGET_DIR=… and TRAITFORGE_BIN=…
    scripts/bench-custom-model.py [--players 100000] [--purchases 1000000] [--rounds 5]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time

from benchlib import Server


def write_rows(folder, files, rows, players, line):
    per_file = rows // files
    for f in range(files):
        with open(os.path.join(folder, f"part-{f:03}.ndjson"), "w") as out:
            for n in range(f * per_file, (f + 1) * per_file):
                out.write(line(n, n % players))


def run_once(server, trait_id):
    """Triggers a run and waits for it; its duration in ms."""
    run = server.rest("POST", f"/traits/{trait_id}/trigger")
    while True:
        runs = server.rest("GET", f"/traits/{trait_id}/runs")
        mine = next(r for r in runs if r["id"] == run["id"])
        if mine["status"] in ("succeeded", "failed"):
            assert mine["status"] == "succeeded", mine
            return mine["duration_ms"]
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=100_000)
    ap.add_argument("--purchases", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--database-url")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="tf-bench-")
    server = Server(work, args.database_url)
    try:
        orders = server.rest("POST", "/models", {
            "name": "Orders",
            "columns": [
                {"name": "order_id", "data_type": "text", "nullable": False},
                {"name": "user_id", "data_type": "text", "nullable": False},
                {"name": "timestamp", "data_type": "timestamp", "nullable": False},
                {"name": "price", "data_type": "number"},
                {"name": "platform", "data_type": "text"},
            ],
            "primary_key": "order_id",
            "user_id_column": "user_id",
            "timestamp_column": "timestamp",
        })
        line = '{"timestamp":"2026-11-%02d 12:00:00","user_id":"p%06d","price":%d.5,"platform":"Steam"}\n'
        write_rows(server.folder("bench", "purchases"), args.files, args.purchases, args.players,
                   lambda n, p: line % (1 + n % 28, p, n % 50))
        write_rows(server.folder("bench", "orders"), args.files, args.purchases, args.players,
                   lambda n, p: line[:-2] % (1 + n % 28, p, n % 50) + ',"order_id":"o%07d"}\n' % n)
        files, load_s = server.load_folder("bench", 2 * args.files)
        print(f"load: {sum(f['rowsLoaded'] for f in files)} rows in {len(files)} files, {load_s:.1f} s")

        models = server.gql('{ p: model(slug: "players") { id } b: model(slug: "purchases") { id relationships { id toModelId } } }')
        players = models["p"]["id"]
        targets = {
            "purchases": (models["b"]["id"], next(r["id"] for r in models["b"]["relationships"] if r["toModelId"] == players)),
            "orders": (orders["id"], orders["relationships"][0]["id"]),
        }
        traits = {}
        for model, (source, rel) in targets.items():
            for agg in ["count", "sum", "avg"]:
                cfg = {"source_model_id": source, "relationship_id": rel, "aggregation": agg}
                if agg != "count":
                    cfg["column"] = "price"
                t = server.rest("POST", "/traits", {
                    "name": f"{agg} {model}", "parent_model_id": players, "trait_type": "aggregation",
                    "config": cfg, "result_type": "number", "refresh": "manual",
                })
                traits[(model, agg)] = t["id"]
        # The definitions' own runs first.
        for t in traits.values():
            while server.rest("GET", f"/traits/{t}/runs")[0]["status"] not in ("succeeded", "failed"):
                time.sleep(0.2)

        durations = {k: [] for k in traits}
        for _ in range(args.rounds):
            for agg in ["count", "sum", "avg"]:
                for model in ["purchases", "orders"]:
                    durations[(model, agg)].append(run_once(server, traits[(model, agg)]))
        total = {}
        for model in ["purchases", "orders"]:
            medians = [statistics.median(durations[(model, a)]) for a in ["count", "sum", "avg"]]
            total[model] = sum(medians)
            print(f"{model:10} count/sum/avg median run: {medians[0]:.0f} / {medians[1]:.0f} / {medians[2]:.0f} ms  (total {total[model]:.0f} ms)")
        print(f"custom / built-in: {total['orders'] / total['purchases']:.3f}x")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
