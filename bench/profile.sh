#!/usr/bin/env bash
# Counts instructions per relayed chunk with valgrind's callgrind, for the minimal relay and
# for ragstream, on the same scripted stream. Unlike CPU time, instruction counts do not
# drift with other load on the machine. Run after bench/run.sh has built the binaries.
# ragstream runs at its default log level (no RUST_LOG), as deployed.
#
#   bench/profile.sh [GAP_MS] [STREAMS]     default: 2 ms gaps (one chunk per read), 40 streams
#   RAGSTREAM_BIN=/path/to/ragstream bench/profile.sh    profile another build (e.g. a fix)
#
# Writes bench/results/callgrind/{minrelay,ragstream}.out and prints instructions per chunk
# and the top functions (inclusive) of each.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
gap="${1:-2}"
streams="${2:-40}"
chunks="${CHUNKS:-100}"
out=bench/results/callgrind
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

bench/target/release/upstream --addr 127.0.0.1:18350 --chunks "$chunks" --gap-ms "$gap" >/dev/null 2>&1 &
pids+=($!)

run_one() {
  local name="$1"; shift
  local port="$1"; shift
  RAGSTREAM_KB__DATA_DIR=bench/target/kb-data OPENAI_BASE_URL=http://127.0.0.1:18350/v1 OPENAI_API_KEY=bench OPENAI_MODEL=bench-model \
    env -u RUST_LOG valgrind --tool=callgrind --callgrind-out-file="$out/$name.out" "$@" >"$out/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  python3 - "$port" "$streams" "$pid" "$chunks" <<'PY'
import http.client, json, subprocess, sys, time
port, streams, pid, chunks = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
deadline = time.time() + 60
while True:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30); conn.connect(); break
    except OSError:
        if time.time() > deadline: sys.exit("relay did not start")
        time.sleep(0.2)
body = json.dumps({"content": "自闭症孩子自伤怎么办？"})
def one():
    conn.request("POST", "/api/python", body, {"content-type": "application/json"})
    r = conn.getresponse(); data = r.read()
    assert r.status == 200 and len(data) > 0, (r.status, data[:200])
for _ in range(5): one()          # warm-up: pools, lazy statics, page faults
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
for _ in range(streams): one()
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The dump taken after the measured streams is the file with the highest suffix.
  local dump
  dump="$(ls -1 "$out/$name.out".* 2>/dev/null | sort -t. -k3 -n | tail -1)"
  local total
  total="$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}')"
  echo "== $name: $total instructions over $streams streams × $chunks chunks = $(( total / (streams * chunks) )) per chunk"
  callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '/^Ir/,$p' | head -60 | cut -c1-200 > "$out/$name.top.txt" || true
  cp "$dump" "$out/$name.dump"
}

run_one minrelay 18351 bench/target/release/minrelay --addr 127.0.0.1:18351
run_one ragstream 18352 "${RAGSTREAM_BIN:-target/release/ragstream}" serve --addr 127.0.0.1:18352 --config examples/autism.toml
