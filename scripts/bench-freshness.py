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
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from benchlib import Server, peak_rss_mib, wait_for_jobs


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
    """Posts of 500 events at `rate` events/s (a sender thread keeps the
    schedule); per post, answer → fresh, polled from this thread."""
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

    senders = []
    sent = {}

    def schedule():
        start = time.time()
        for i in range(posts):
            delay = start + i * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=send, args=(i,))
            t.start()
            senders.append(t)
        sent["rate"] = posts * per_post / max(1e-9, time.time() - start)

    rss = [rss_mib(server.worker.pid)] if server.worker else []
    scheduler = threading.Thread(target=schedule)
    scheduler.start()
    deadline = time.time() + seconds + 180
    last_rss = time.time()
    while len(fresh) + len(refused) < posts and time.time() < deadline:
        with lock:
            pending = [j for j in answered if j not in fresh]
        if pending:
            seen = counts(server, [markers[j] for j in pending])
            now = time.time()
            for j in pending:
                v, b = seen[markers[j]], before[markers[j]]
                if v is not None and v >= b + 1:
                    if v > b + 1:
                        over.append(j)
                    fresh[j] = now
        if server.worker and time.time() - last_rss >= 1:
            rss.append(rss_mib(server.worker.pid))
            last_rss = time.time()
        time.sleep(0.02)
    scheduler.join()
    for t in senders:
        t.join()
    lags = sorted(fresh[j] - answered[j] for j in fresh)
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else float("nan")
    print(
        f"stream {rate} events/s for {seconds} s (sent at {sent.get('rate', 0):.0f}/s): {posts} posts of {per_post}; refused {len(refused)}; "
        f"fresh {len(fresh)}/{posts - len(refused)}; answer → fresh p50 {statistics.median(lags) if lags else float('nan'):.2f} s, "
        f"p95 {p(0.95):.2f} s, max {lags[-1] if lags else float('nan'):.2f} s; counted twice: {len(over)}"
        + (f"; worker RSS {rss[0]:.0f} → max {max(rss):.0f} → {rss_mib(server.worker.pid):.0f} MiB" if rss else ""),
        flush=True,
    )
    return posts


def rows_fetched(database_url):
    """PostgreSQL: rows read from the workspace's tables so far (sequential
    reads plus rows fetched through indexes), after the statistics flushed."""
    if not database_url or not database_url.startswith("postgres"):
        return None
    time.sleep(1.5)
    out = subprocess.run(
        ["psql", database_url, "-Atc",
         "SELECT sum(seq_tup_read + coalesce(idx_tup_fetch, 0)) FROM pg_stat_user_tables "
         "WHERE schemaname = 'public' AND relname IN ('purchases', 'players', 'trait_values', 'segment_members', "
         "'segment_changes', 'psych_scores', 'persona_members')"],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip() or 0)


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
        wait_for_jobs(server)
        print(f"three traits and the segment computed in full: {time.time() - started:.1f} s")
        full_rows = loaded

        for round_ in range(args.rounds):
            step = max(1, args.players // args.new)
            chosen = [(round_ + i * step) % args.players for i in range(args.new)]
            sample = chosen[:: max(1, len(chosen) // 20)][:20]
            users = ["p%07d" % p for p in sample]
            before = counts(server, users)
            body = "".join(
                '{"timestamp":"2026-12-01 12:00:00","user_id":"p%07d","price":9.5}\n' % p for p in chosen
            )
            fetched = rows_fetched(args.database_url)
            t0 = time.time()
            answer = post_ndjson(server, "purchases", body)
            answered = time.time()
            pending = set(users)
            while pending:
                seen = counts(server, sorted(pending))
                pending = {u for u in pending if seen[u] != before[u] + 1}
                if pending:
                    time.sleep(0.01)
            fresh = time.time()
            last = server.gql('query($id: ID!) { trait(id: $id) { lastPass { entities rowsRead durationMs } } }', {"id": ids[0]})
            lp = last["trait"]["lastPass"]
            cost = ""
            if fetched is not None:
                wait_for_jobs(server)
                cost = f"; rows fetched from the tables by the post and its pass: {rows_fetched(args.database_url) - fetched}"
            print(
                f"round {round_ + 1}: {answer['data']['accepted'] if 'data' in answer else answer} posted, answered in "
                f"{answered - t0:.2f} s; fresh {fresh - answered:.2f} s after the answer; last pass: "
                f"{lp['entities']} players, {lp['rowsRead']} rows read ({100.0 * lp['rowsRead'] / full_rows:.2f}% of a full run's {full_rows}), {lp['durationMs']} ms"
                + cost,
                flush=True,
            )
        fetched = rows_fetched(args.database_url)
        if fetched is not None:
            started = time.time()
            server.gql("mutation($m: ID!) { refreshTraits(parentModelId: $m) { id } }", {"m": players})
            wait_for_jobs(server)
            print(
                f"full refresh of the three traits and the segment: {time.time() - started:.1f} s, rows fetched from the tables: "
                f"{rows_fetched(args.database_url) - fetched}",
                flush=True,
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
