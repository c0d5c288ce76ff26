#!/usr/bin/env bash
# The soak: 200 streams in flight through ragstream for MINUTES minutes (default 10), after a
# 30 s warm-up at the same load. It samples ragstream's RSS and its active-streams gauge every
# 10 s, and checks at the end that every stream succeeded, that the gauge is back at 0 and
# that RSS stayed flat. Writes bench/results/soak.md (shorter runs: soak-partial.md).
#
#   bench/soak.sh          full soak, 10 minutes (about 11 minutes once built)
#   bench/soak.sh 1        a 1-minute soak, to try it out
#   bench/soak.sh 25       25 minutes, to tell allocator retention from a leak (soak-long.md)
#
# Everything listens on 127.0.0.1 only; the workers stop at the end of the soak and every
# stream is capped at 60 s.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

minutes="${1:-10}"
case "$minutes" in
  ''|*[!0-9.]*) echo "usage: bench/soak.sh [MINUTES]" >&2; exit 2 ;;
esac
command="bench/soak.sh${1:+ $1}"

# 200 streams need ~600 sockets (client, ragstream both sides, upstream).
hard="$(ulimit -Hn)"
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

echo "building the harness and ragstream (release)…" >&2
cargo build --release --quiet --manifest-path bench/Cargo.toml
cargo build --release --quiet --bin ragstream

mkdir -p bench/results
# 10 minutes: soak.md; longer (the memory check, e.g. `bench/soak.sh 25`): soak-long.md;
# shorter: soak-partial.md.
out=bench/results/soak.md
if [ "$minutes" != 10 ]; then
  if awk "BEGIN { exit !($minutes > 10) }"; then out=bench/results/soak-long.md; else out=bench/results/soak-partial.md; fi
fi
export BENCH_COMMAND="$command"
bench/target/release/loadgen soak \
  --concurrency 200 --minutes "$minutes" --warmup-s 30 --gap-ms 20 --chunks 100 --chat-every 10 \
  --upstream-bin bench/target/release/upstream \
  --ragstream-bin target/release/ragstream --ragstream-config examples/autism.toml \
  --out "$out"
