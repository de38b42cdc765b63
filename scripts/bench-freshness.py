#!/usr/bin/env python3
"""Freshness benchmark of incremental evaluation (issue 22).

Loads PLAYERS players' PURCHASES purchases from NDJSON files through a local
source, creates three `on_load` traits (count, sum, avg of price) and a
segment over the sum, then posts NEW purchases of NEW distinct existing
players in one request and measures the time from the post's answer until
those players' traits show the new events (a sample of them polled through
GraphQL). Prints the load time, the post's answer time, the freshness time
and the last pass's rows read beside the rows a full run reads.

With --stream-rates R1,R2,…: then, at each rate in turn, posts of 500 events
(500 distinct players each) every 500/R seconds for --stream-seconds, and
measures per post the time from its answer until its first player's count
shows the event (p50, p95), posts refused, counts off by more than the event
(counted twice), and the worker's RSS.

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
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request

from benchlib import Server, peak_rss_mib


def post_ndjson(server, record_type, body):
    req = urllib.request.Request(f"{server.url}/v1/events/{record_type}", data=body.encode(), method="POST")
    req.add_header("Authorization", "Bearer " + server.key)
    req.add_header("Content-Type", "application/x-ndjson")
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def counts(server, users):
    """The `purchases` trait of each user, 25 users per GraphQL request."""
    out = {}
    for i in range(0, len(users), 25):
        chunk = users[i : i + 25]
        q = "{ " + " ".join(f'u{j}: player(userId: "{u}") {{ traits {{ slug value }} }}' for j, u in enumerate(chunk)) + " }"
        d = server.gql(q)
        for j, u in enumerate(chunk):
            out[u] = next((t["value"] for t in d[f"u{j}"]["traits"] if t["slug"] == "purchases"), None)
    return out


def stream(server, players, rate, seconds, first_post):
    """Posts of 500 events at `rate` events/s; per post, answer → fresh."""
    per_post = 500
    posts = max(1, int(rate * seconds / per_post))
    interval = per_post / rate
    batches = []
    for i in range(posts):
        k0 = (first_post + i) * per_post
        batches.append(["p%07d" % ((k * 7 + 3) % players) for k in range(k0, k0 + per_post)])
    markers = [b[0] for b in batches]
    before = counts(server, markers)
    answered, refused, fresh, over = {}, [], {}, []
    lock = threading.Lock()

    def send(i):
        body = "".join('{"timestamp":"2026-12-02 12:00:00","user_id":"%s","price":1.5}\n' % u for u in batches[i])
        try:
            post_ndjson(server, "purchases", body)
            with lock:
                answered[i] = time.time()
        except urllib.error.HTTPError as e:
            with lock:
                refused.append((i, e.code))

    rss = [rss_mib(server.worker.pid)] if server.worker else []
    start = time.time()
    senders = []
    for i in range(posts):
        delay = start + i * interval - time.time()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=send, args=(i,))
        t.start()
        senders.append(t)
        # Between sends: poll the markers of answered posts.
        with lock:
            pending = [j for j in answered if j not in fresh]
        if pending:
            seen = counts(server, [markers[j] for j in pending])
            now = time.time()
            for j in pending:
                v = seen[markers[j]]
                if v == before[markers[j]] + 1:
                    fresh[j] = now
                elif v is not None and v > before[markers[j]] + 1:
                    over.append(j)
                    fresh[j] = now
        if server.worker and i % max(1, int(1 / interval)) == 0:
            rss.append(rss_mib(server.worker.pid))
    sent_rate = posts * per_post / max(1e-9, time.time() - start)
    for t in senders:
        t.join()
    deadline = time.time() + 120
    while len(fresh) + len(refused) < posts and time.time() < deadline:
        pending = [j for j in answered if j not in fresh]
        seen = counts(server, [markers[j] for j in pending])
        now = time.time()
        for j in pending:
            v = seen[markers[j]]
            if v is not None and v >= before[markers[j]] + 1:
                if v > before[markers[j]] + 1:
                    over.append(j)
                fresh[j] = now
        time.sleep(0.05)
    lags = sorted(fresh[j] - answered[j] for j in fresh)
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else float("nan")
    print(
        f"stream {rate} events/s for {seconds} s (sent at {sent_rate:.0f}/s): {posts} posts of {per_post}; refused {len(refused)}; "
        f"fresh {len(fresh)}/{posts - len(refused)}; answer → fresh p50 {statistics.median(lags) if lags else float('nan'):.2f} s, "
        f"p95 {p(0.95):.2f} s, max {lags[-1] if lags else float('nan'):.2f} s; counted twice: {len(over)}"
        + (f"; worker RSS {rss[0]:.0f} → max {max(rss):.0f} → {rss_mib(server.worker.pid):.0f} MiB" if rss else "")
    )
    return posts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=100_000)
    ap.add_argument("--purchases", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--database-url")
    ap.add_argument("--redis-url")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stream-rates", default="")
    ap.add_argument("--stream-seconds", type=int, default=60)
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
        first_post = 0
        for rate in [int(r) for r in args.stream_rates.split(",") if r]:
            first_post += stream(server, args.players, rate, args.stream_seconds, first_post)
        print(f"server peak RSS {peak_rss_mib(server.process.pid):.0f} MiB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
