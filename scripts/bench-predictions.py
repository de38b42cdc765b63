#!/usr/bin/env python3
"""Predictive-trait benchmark (issue 24).

Plants PLAYERS players with about EVENTS events over 60 days (logins at a
per-player rate, a purchase after one login in ten); after the cutoff
(now − WINDOW days) a player churns (no event) with a probability falling
with their logins of the last 28 days. Loads them as NDJSON through a local
source, creates three traits (logins in 28 days, revenue, logins in all),
then creates a churn prediction and measures: the create call (it checks
the history and both outcome sides at once), the training job (features as
of the cutoff, fit, measure) and the scoring (features as of now, scores,
the switch of the three score traits), from the worker's log, the time from
the create call to `ready`, the holdout AUC, and the worker's peak RSS.

    cargo build --release -p api -p worker
    scripts/bench-predictions.py --database-url postgres://… --redis-url redis://…
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone

from benchlib import Server, peak_rss_mib, wait_for_jobs


def plant(server, players, events, window, seed=7):
    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(days=window)
    start = cutoff - timedelta(days=60 - window)
    rng = random.Random(seed)
    mean_rate = events / players / 60 / 1.1
    logins_dir, purchases_dir = server.folder("data", "logins"), server.folder("data", "purchases")
    parts = 4
    logins = [open(os.path.join(logins_dir, f"part-{i}.ndjson"), "w") for i in range(parts)]
    purchases = open(os.path.join(purchases_dir, "part-0.ndjson"), "w")
    written = 0
    fmt = "%Y-%m-%d %H:%M:%S"
    for i in range(players):
        user = f"u{i:07d}"
        rate = mean_rate * (0.1 + 1.8 * rng.random())
        out = logins[i % parts]
        at = start + timedelta(seconds=rng.random() * 86400 * 3)
        recent = 0
        lines = []
        while at < cutoff:
            ts = at.strftime(fmt)
            lines.append(f'{{"timestamp":"{ts}","user_id":"{user}"}}\n')
            if at > cutoff - timedelta(days=28):
                recent += 1
            if rng.random() < 0.1:
                purchases.write(f'{{"timestamp":"{ts}","user_id":"{user}","item_id":"gem","count":1,"price":{rng.randint(1, 20)}}}\n')
                written += 1
            at += timedelta(days=rng.expovariate(rate))
        churn = 1 / (1 + math.exp(-(1.0 - 0.6 * recent)))
        if rng.random() >= churn:
            while at < now - timedelta(minutes=5):
                lines.append(f'{{"timestamp":"{at.strftime(fmt)}","user_id":"{user}"}}\n')
                at += timedelta(days=rng.expovariate(rate))
        out.writelines(lines)
        written += len(lines)
    for f in logins + [purchases]:
        f.close()
    return written, parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--window", type=int, default=14)
    ap.add_argument("--database-url")
    ap.add_argument("--redis-url")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tf-bench-predictions-")
    os.environ["RUST_LOG"] = "warn,engine::predictive=info"
    server = Server(work, args.database_url, args.redis_url)
    try:
        t = time.time()
        written, parts = plant(server, args.players, args.events, args.window)
        print(f"planted {written} events of {args.players} players in {time.time() - t:.0f} s")
        _, secs = server.load_folder("data", parts + 1)
        print(f"loaded in {secs:.0f} s")
        players = server.gql('{ players: model(slug: "players") { id } logins: model(slug: "logins") { id relationships { id toModelId } } purchases: model(slug: "purchases") { id relationships { id toModelId } } }')
        pid = players["players"]["id"]
        rel = lambda m: next(r["id"] for r in players[m]["relationships"] if r["toModelId"] == pid)
        for name, model, extra in [
            ("Logins 28d", "logins", {"aggregation": "count", "window": {"within_days": 28}}),
            ("Logins", "logins", {"aggregation": "count"}),
            ("Revenue", "purchases", {"aggregation": "sum", "column": "price"}),
        ]:
            server.rest("POST", "/traits", {
                "name": name, "parent_model_id": pid, "trait_type": "aggregation", "result_type": "number",
                "config": {"source_model_id": players[model]["id"], "relationship_id": rel(model), **extra},
            })
        wait_for_jobs(server)
        t = time.time()
        created = server.rest("POST", "/predictions", {"name": "Churn risk", "goal": "churn", "window_days": args.window})
        answered = time.time() - t
        while True:
            p = server.rest("GET", f"/predictions/{created['id']}")
            if p["status"] != "training":
                break
            time.sleep(0.5)
        total = time.time() - t
        if p["status"] != "ready":
            raise SystemExit(f"prediction {p['status']}: {p['status_error']}")
        q = p["quality"]
        log = open(os.path.join(work, "worker.log" if args.redis_url else "server.log")).read()
        lines = [l for l in log.splitlines() if "prediction trained" in l or "prediction scored" in l or "prediction dataset" in l]
        pid_ = (server.worker or server.process).pid
        print(json.dumps({
            "create_call_s": round(answered, 2),
            "create_to_ready_s": round(total, 2),
            "phases": [re.sub(r"\x1b\[[0-9;]*m", "", l)[-260:] for l in lines],
            "scored_players": p["scored_players"],
            "training_players": q["training_players"],
            "holdout_auc": q["auc"],
            "top_decile_lift": q["top_decile_lift"],
            "quality": q["quality"],
            "worker_peak_rss_mib": round(peak_rss_mib(pid_)),
        }, indent=2))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
