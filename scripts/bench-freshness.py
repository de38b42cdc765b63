#!/usr/bin/env python3
"""Freshness benchmark of incremental evaluation (issue 22).

Loads PLAYERS players' PURCHASES purchases from NDJSON files through a local
source, creates three `on_load` traits (count, sum, avg of price) and a
segment over the sum, then posts NEW purchases of NEW distinct existing
players in one request and measures the time from the post's answer until
those players' traits show the new events (a sample of them polled through
GraphQL). Prints the load time, the post's answer time, the freshness time
and the last pass's rows read beside the rows a full run reads.

Embedded default (SQLite file, in-process worker):
    cargo build --release -p api -p worker
    scripts/bench-freshness.py --players 100000 --purchases 1000000
PostgreSQL with Redis and one `traitforge-worker`:
    scripts/bench-freshness.py --database-url postgres://… --redis-url redis://…
"""

import argparse
import json
import os
import shutil
import tempfile
import time
import urllib.request

from benchlib import Server, peak_rss_mib


def post_ndjson(server, record_type, body):
    req = urllib.request.Request(f"{server.url}/v1/events/{record_type}", data=body.encode(), method="POST")
    req.add_header("Authorization", "Bearer " + server.key)
    req.add_header("Content-Type", "application/x-ndjson")
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=100_000)
    ap.add_argument("--purchases", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--database-url")
    ap.add_argument("--redis-url")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="tf-fresh-")
    server = Server(work, args.database_url, args.redis_url)
    try:
        folder = server.folder("bench", "purchases")
        per_file = args.purchases // args.files
        for f in range(args.files):
            with open(os.path.join(folder, f"part-{f:03}.ndjson"), "w") as out:
                for n in range(f * per_file, (f + 1) * per_file):
                    out.write(
                        '{"timestamp":"2026-11-%02d 12:00:00","user_id":"p%07d","price":%d.5}\n'
                        % (1 + n % 28, n % args.players, n % 50)
                    )
        files, load_s = server.load_folder("bench", args.files)
        loaded = sum(f["rowsLoaded"] for f in files)
        print(f"load: {loaded} rows, {load_s:.1f} s")

        models = server.gql('{ p: model(slug: "players") { id } b: model(slug: "purchases") { id relationships { id toModelId } } }')
        players = models["p"]["id"]
        rel = next(r["id"] for r in models["b"]["relationships"] if r["toModelId"] == players)
        ids = []
        for name, cfg in [("Purchases", {"aggregation": "count"}), ("Spend", {"aggregation": "sum", "column": "price"}),
                          ("Avg price", {"aggregation": "avg", "column": "price"})]:
            cfg = dict(cfg, source_model_id=models["b"]["id"], relationship_id=rel)
            body = {"name": name, "parent_model_id": players, "trait_type": "aggregation", "config": cfg,
                    "result_type": "number", "refresh": "on_load"}
            ids.append(server.rest("POST", "/traits", body)["id"])
        server.gql('mutation($f: JSON!) { createSegment(input: { name: "Big spenders", filter: $f }) { id } }',
                   {"f": {"trait": "spend", "op": ">", "value": 300}})
        started = time.time()
        while True:
            jobs = server.gql("{ jobs(first: 500) { nodes { status } } }")["jobs"]["nodes"]
            if all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs):
                break
            time.sleep(0.5)
        print(f"three traits and the segment computed in full: {time.time() - started:.1f} s")
        full_rows = loaded

        for round_ in range(args.rounds):
            step = max(1, args.players // args.new)
            chosen = [(round_ + i * step) % args.players for i in range(args.new)]
            sample = chosen[:: max(1, len(chosen) // 20)][:20]
            def count_of(p):
                d = server.gql('query($u: String!) { player(userId: $u) { traits { slug value } } }', {"u": "p%07d" % p})
                return next((t["value"] for t in d["player"]["traits"] if t["slug"] == "purchases"), None)
            before = {p: count_of(p) for p in sample}
            body = "".join(
                '{"timestamp":"2026-12-01 12:00:00","user_id":"p%07d","price":9.5}\n' % p for p in chosen
            )
            t0 = time.time()
            answer = post_ndjson(server, "purchases", body)
            answered = time.time()
            pending = set(sample)
            while pending:
                pending = {p for p in pending if count_of(p) != before[p] + 1}
                if pending:
                    time.sleep(0.02)
            fresh = time.time()
            last = server.gql('query($id: ID!) { trait(id: $id) { lastPass { entities rowsRead durationMs } } }', {"id": ids[0]})
            lp = last["trait"]["lastPass"]
            print(
                f"round {round_ + 1}: {answer['data']['accepted'] if 'data' in answer else answer} posted, answered in "
                f"{answered - t0:.2f} s; fresh {fresh - answered:.2f} s after the answer; last pass: "
                f"{lp['entities']} players, {lp['rowsRead']} rows read ({100.0 * lp['rowsRead'] / full_rows:.2f}% of a full run's {full_rows}), {lp['durationMs']} ms"
            )
        print(f"server peak RSS {peak_rss_mib(server.process.pid):.0f} MiB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
