"""What the benchmark scripts share: a release `traitforge` on a fresh
database with its in-process worker, and small HTTP helpers."""

import json
import os
import re
import socket
import subprocess
import sys
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


def wait_for_jobs(server):
    """Until /metrics counts no job queued or running."""
    while True:
        req = urllib.request.Request(f"{server.url}/metrics")
        req.add_header("Authorization", "Bearer " + server.key)
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
        busy = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("traitforge_jobs{") and ('status="queued"' in line or 'status="running"' in line)
        )
        if busy == 0:
            return
        time.sleep(0.2)


class Server:
    """The server on `database_url` (default: a SQLite file in `work`), its
    workspace id, key and URL once it answers."""

    def __init__(self, work, database_url=None, redis_url=None):
        self.root = os.path.join(work, "sources")
        port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=database_url or f"sqlite://{work}/bench.db?mode=rwc",
            BIND=f"127.0.0.1:{port}",
            LOCAL_SOURCE_ROOT=self.root,
            RUST_LOG=os.environ.get("RUST_LOG", "warn"),
        )
        env.pop("REDIS_URL", None)
        self.worker = None
        if redis_url:
            # PostgreSQL: the queue on Redis, and one `traitforge-worker` beside the server.
            env["REDIS_URL"] = redis_url
            env["QUEUE_NAME"] = f"bench-{port}"
        self.process = subprocess.Popen(
            [os.environ.get("TRAITFORGE_BIN", os.path.join(ROOT, "target/release/traitforge"))],
            env=env,
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(work, "server.log"), "w"),
            text=True,
        )
        self.ws = self.key = None
        while self.key is None:
            line = self.process.stdout.readline()
            if not line:
                sys.exit("server ended before printing its key: see " + work)
            if m := re.search(r'Created workspace "default": (\S+)', line):
                self.ws = m.group(1)
            if m := re.search(r"store it now\): (\S+)", line):
                self.key = m.group(1)
        if redis_url:
            # After the server migrated the database.
            self.worker = subprocess.Popen(
                [os.environ.get("TRAITFORGE_WORKER_BIN", os.path.join(ROOT, "target/release/traitforge-worker"))],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(work, "worker.log"), "w"),
            )
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "/healthz")
                break
            except OSError:
                time.sleep(0.1)

    def gql(self, query, variables=None):
        return gql(self.url, self.key, query, variables)

    def rest(self, method, path, body=None):
        return call(
            self.url,
            self.key,
            f"/api/v1/workspaces/{self.ws}{path}",
            body,
            method=method,
            headers={"X-Workspace-ID": self.ws},
        )

    def folder(self, *parts):
        """A folder inside the workspace's own local-source folder."""
        path = os.path.join(self.root, self.ws, *parts)
        os.makedirs(path, exist_ok=True)
        return path

    def load_folder(self, name, expect_files):
        """Scans a local source over `name` until its files are loaded; returns them and the time."""
        source = self.gql(
            'mutation($n: String!, $c: JSON!) { createDataSource(input: { name: $n, kind: local, config: $c }) { id } }',
            {"n": name, "c": {"path": name}},
        )["createDataSource"]["id"]
        started = time.time()
        self.gql("mutation($id: ID!) { scanDataSource(id: $id) { id } }", {"id": source})
        while True:
            files = self.gql(
                "query($id: ID!) { dataSource(id: $id) { files { nodes { status rowsLoaded } } } }", {"id": source}
            )["dataSource"]["files"]["nodes"]
            if len(files) == expect_files and all(f["status"] in ("loaded", "failed") for f in files):
                return files, time.time() - started
            time.sleep(0.5)

    def stop(self):
        for p in (self.process, self.worker):
            if p is not None:
                p.terminate()
                p.wait(timeout=60)
