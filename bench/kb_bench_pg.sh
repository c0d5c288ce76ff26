#!/usr/bin/env bash
# kb_bench with --postgres on a throwaway PostgreSQL 15 + pgvector cluster (as tests/support/pg.rs starts
# one): initdb in a temporary directory, loopback port, the database dropped and the cluster removed at exit.
#   bench/kb_bench_pg.sh --chunks 100000 --dim 384 --queries 500 --runs 3
# KB_BENCH_EXAMPLE picks another example with --postgres, e.g. the write benchmark:
#   KB_BENCH_EXAMPLE=kb_pg_writes bench/kb_bench_pg.sh --chunks 20000 --runs 5
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
[ -x "$BIN/initdb" ] || { echo "PostgreSQL 15 is not installed: run scripts/setup" >&2; exit 1; }
PORT=${PGBENCH_PORT:-54391}
DIR=$(mktemp -d /tmp/ragstream-pgbench-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
cleanup() {
  as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS kb_bench' || true
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
as_pg "$BIN/initdb" -A trust -U postgres -E UTF8 --no-sync -D "$DIR/data" >/dev/null
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c shared_buffers=512MB -c maintenance_work_mem=512MB" >/dev/null
as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc 'CREATE DATABASE kb_bench'
as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d kb_bench -qc 'CREATE EXTENSION vector'
cargo run --release --example "${KB_BENCH_EXAMPLE:-kb_bench}" -- "$@" \
  --postgres "postgres://postgres@127.0.0.1:$PORT/kb_bench?sslmode=disable"
