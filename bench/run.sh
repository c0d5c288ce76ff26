#!/usr/bin/env bash
# One command for the whole benchmark: builds release binaries, then lets the load generator
# start a fresh scripted upstream, the minimal relay and ragstream for every case, and writes
# the markdown report to bench/results/latest.md (quick and partial runs: partial.md).
# A full run measures every case three times and reports each target as min/median/max.
#
#   bench/run.sh            full run: 3 runs of every case (about 15 minutes on 2 cores)
#   bench/run.sh --runs 1   one run of every case (about 5 minutes; written to partial.md)
#   bench/run.sh --quick    smaller run, once (under 2 minutes)
#   bench/run.sh --only c1000          only the cases whose name contains "c1000"
#   bench/run.sh --no-ragstream        upstream and minimal relay only
#
# Everything listens on 127.0.0.1 only; every load loop is bounded in count and time.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

command="bench/run.sh${*:+ $*}"
ragstream=1
partial=0
runs=3
loadgen_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-ragstream) ragstream=0 ;;
    --quick) loadgen_args+=(--quick); partial=1; runs=1 ;;
    --runs) runs="$2"; shift ;;
    --only) loadgen_args+=(--only "$2"); partial=1; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--runs N] [--only NAME] [--no-ragstream]" >&2; exit 2 ;;
  esac
  shift
done

# 1,000 streams need ~3,000 sockets in the relay case (client, relay both sides, upstream).
hard="$(ulimit -Hn)"
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

echo "building the harness (release)…" >&2
cargo build --release --quiet --manifest-path bench/Cargo.toml
bins=bench/target/release
loadgen_args+=(--upstream-bin "$bins/upstream" --minrelay-bin "$bins/minrelay")

if [ "$ragstream" = 1 ]; then
  if [ ! -d src/server ]; then
    echo "no src/server in this tree yet: measuring upstream and minimal relay only" >&2
  else
    echo "building ragstream (release)…" >&2
    cargo build --release --quiet --bin ragstream
    loadgen_args+=(--ragstream-bin target/release/ragstream)
    for config in bench/ragstream.toml examples/autism.toml; do
      if [ -f "$config" ]; then loadgen_args+=(--ragstream-config "$config"); break; fi
    done
  fi
fi

mkdir -p bench/results
export BENCH_COMMAND="$command"
# Only a full run (at least 3 runs) replaces the committed report; others go to partial.md.
out=bench/results/latest.md
if [ "$partial" = 1 ] || [ "$ragstream" = 0 ] || [ "$runs" -lt 3 ]; then out=bench/results/partial.md; fi
"$bins/loadgen" "${loadgen_args[@]}" --runs "$runs" --out "$out"
