#!/usr/bin/env python3
"""Rescoring benchmark of survey norms (issue 26).

Loads PLAYERS players (one purchase each, NDJSON through a local source), a
`sum` trait over them (computed before anyone answers), then has RESPONDENTS
players answer the survey over HTTP: the default instrument (124 items, 61
facets + 8 combined), or with --facets F one of F facets of 3 items each
and one combined facet. The workspace's norms are computed
at the 200th completion, the prediction trains at the last one and predicts
every other player (69 facets each). MORE players answer after that, and
`refreshSurveyNorms` moves the norms: every stored score (answered and
predicted) is rescored in one transaction. Prints the time of the
prediction's job and of the rescoring's job, the scores rescored, and the
worker's peak RSS.

    cargo build --release -p api -p worker
    scripts/bench-norms.py --database-url postgres://… --redis-url redis://…
"""

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime

from benchlib import Server, peak_rss_mib


def job_seconds(server, job_id):
    while True:
        j = server.gql("query($id: ID!) { job(id: $id) { status startedAt finishedAt error } }", {"id": job_id})["job"]
        status = j["status"].lower()
        if status in ("succeeded", "failed"):
            if status == "failed":
                raise SystemExit(f"job {job_id} failed: {j['error']}")
            start = datetime.fromisoformat(j["startedAt"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(j["finishedAt"].replace("Z", "+00:00"))
            return (end - start).total_seconds()
        time.sleep(0.5)


def newest_job(server, kind):
    """The id of the newest job of `kind` (jobs list oldest first)."""
    found, after = None, None
    while True:
        d = server.gql(
            "query($a: String) { jobs(first: 100, after: $a) { nodes { id kind } pageInfo { hasNextPage endCursor } } }",
            {"a": after},
        )["jobs"]
        found = next((j["id"] for j in reversed(d["nodes"]) if j["kind"] == kind), found)
        if not d["pageInfo"]["hasNextPage"]:
            return found
        after = d["pageInfo"]["endCursor"]


def answer(server, instrument, user, seed):
    """Registers `user` and answers every page of the survey page over HTTP forms."""
    reg = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                server.url + "/v1/assessment/user/register",
                data=json.dumps({"id": user}).encode(),
                headers={"Authorization": "Bearer " + server.key, "Content-Type": "application/json"},
            ),
            timeout=120,
        ).read()
    )
    token = reg["data"]["token"]
    urllib.request.urlopen(f"{server.url}/survey?playerid={token}", timeout=120).read()
    per_page = instrument["items_per_page"]
    items = instrument["items"]
    for page in range(0, (len(items) + per_page - 1) // per_page):
        form = {"playerid": token, "page": str(page)}
        for k, item in enumerate(items[page * per_page : (page + 1) * per_page]):
            if "attention_check" in item:
                form[item["id"]] = str(item["attention_check"]["expect"])
            else:
                form[item["id"]] = str(1 + (seed * 7 + page * 3 + k * 2 + (seed * k) % 3) % 5)
        urllib.request.urlopen(
            urllib.request.Request(server.url + "/survey", data=urllib.parse.urlencode(form).encode()), timeout=120
        ).read()


def answer_all(server, instrument, users, offset, threads=4):
    def run(part):
        for i, u in part:
            answer(server, instrument, u, offset + i)

    parts = [list(enumerate(users))[t::threads] for t in range(threads)]
    workers = [threading.Thread(target=run, args=(p,)) for p in parts]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def instrument_of(facets):
    """F facets of three items (the third reverse-keyed) and one combined facet of the first two."""
    items, declared = [], []
    for f in range(facets):
        declared.append({"category": "bench", "facet": f"F{f:02d}", "norm": {"mean": 3.2, "sd": 0.8}})
        for k in range(3):
            items.append({"id": f"f{f:02d}i{k}", "text": f"Statement {f}.{k}", "category": "bench", "facet": f"F{f:02d}", "keying": "-" if k == 2 else "+"})
    return {
        "version": 1,
        "scale": {"min": 1, "max": 5, "labels": ["1", "2", "3", "4", "5"]},
        "items_per_page": 50,
        "facets": declared,
        "combined": [{"category": "bench", "facet": "Both", "from": [{"category": "bench", "facet": "F00"}, {"category": "bench", "facet": "F01"}]}],
        "items": items,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=1_000_000)
    ap.add_argument("--respondents", type=int, default=250)
    ap.add_argument("--more", type=int, default=50)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--facets", type=int, default=0, help="an instrument of this many facets (0: the default one)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tf-bench-norms-")
    # Train once, when every first respondent has answered; no debounced retraining.
    os.environ["PREDICTION_MIN_COMPLETES"] = str(args.respondents)
    os.environ["PREDICTION_RETRAIN_MINUTES"] = "100000"
    os.environ["SURVEY_SUBMITS_PER_MINUTE"] = "100000"
    server = Server(work, args.database_url, args.redis_url)
    try:
        folder = server.folder("data", "purchases")
        with open(os.path.join(folder, "part-0.ndjson"), "w") as f:
            for i in range(args.players):
                f.write(
                    json.dumps(
                        {"user_id": f"p{i:07d}", "timestamp": "2026-11-01 12:00:00", "price": (i % 97) + 0.5}
                    )
                    + "\n"
                )
        _, took = server.load_folder("data", 1)
        print(f"loaded {args.players} players in {took:.1f} s")
        ids = server.gql('{ players: model(slug: "players") { id } purchases: model(slug: "purchases") { id relationships { id toModelId } } }')
        players = ids["players"]["id"]
        rel = next(r["id"] for r in ids["purchases"]["relationships"] if r["toModelId"] == players)
        server.rest("POST", "/traits", {
            "name": "spend", "parent_model_id": players, "trait_type": "aggregation", "result_type": "number",
            "config": {"source_model_id": ids["purchases"]["id"], "relationship_id": rel, "aggregation": "sum", "column": "price"},
        })
        while True:
            t = server.gql("{ traits { nodes { slug lastComputedAt } } }")["traits"]["nodes"]
            if all(n["lastComputedAt"] for n in t):
                break
            time.sleep(0.5)
        if args.facets:
            server.gql("mutation($i: JSON!) { updateSurvey(input: { instrument: $i }) { minSeconds } }", {"i": instrument_of(args.facets)})
        server.gql("mutation { updateSurvey(input: { minSeconds: 0 }) { minSeconds } }")
        instrument = server.gql("{ survey { instrument } }")["survey"]["instrument"]
        started = time.time()
        answer_all(server, instrument, [f"p{i:07d}" for i in range(args.respondents)], 0)
        print(f"{args.respondents} respondents answered in {time.time() - started:.1f} s")
        train = None
        while train is None:
            train = newest_job(server, "train_prediction")
            time.sleep(0.5)
        print(f"training and predicting everyone: {job_seconds(server, train):.1f} s")
        answer_all(server, instrument, [f"p{i:07d}" for i in range(args.respondents, args.respondents + args.more)], 7)
        scores = server.gql("{ survey { norms { version source completes } } }")["survey"]["norms"]
        print(f"before: norms {scores}")
        job = server.gql("mutation { refreshSurveyNorms { id } }")["refreshSurveyNorms"]["id"]
        took = job_seconds(server, job)
        after = server.gql("{ survey { norms { version source completes } } }")["survey"]["norms"]
        facets = len(server.gql("{ survey { norms { facets { facet } } } }")["survey"]["norms"]["facets"])
        print(f"after: norms {after}")
        print(f"rescoring {args.players} players ({facets} item facets + combined) after the norm change: {took:.1f} s")
        pid = server.worker.pid if server.worker else server.process.pid
        print(f"worker peak RSS: {peak_rss_mib(pid):.0f} MiB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
