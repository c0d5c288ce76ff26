"""Cosine distributions and embedding throughput, against a running embeddings server.

    python cosines.py --url http://127.0.0.1:PORT/v1 --kb examples/kb/autism-qa.jsonl EVAL.jsonl…

Each entry is embedded as ragstream embeds a question/answer row (src/kb/document.rs
`Document::embedding_text`, with the trimming of src/kb/formats/mod.rs `QaRow::into_document`):
the trimmed question, a newline, the trimmed answer. Each eval question is embedded as it is,
as a search embeds the query. For every eval set:

  (a) in-domain questions: cosine to their expected entry (the best one when several are expected);
  (b) in-domain questions: the best cosine to any entry that is not expected;
  (c) out-of-domain questions: the best cosine to any entry.

Percentiles interpolate linearly between the sorted values (numpy's default).
"""

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path

import numpy as np

def embed(url: str, texts: list[str], batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(texts), batch):
        body = json.dumps({"model": "m3e-small", "input": texts[i : i + batch], "encoding_format": "float"}).encode()
        req = urllib.request.Request(f"{url}/embeddings", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            data = sorted(json.load(resp)["data"], key=lambda d: d["index"])
        out.extend(d["embedding"] for d in data)
    v = np.asarray(out, dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stats_row(label: str, values: list[float]) -> str:
    if not values:
        return f"| {label} | 0 | — | — | — | — | — |"
    v = np.asarray(values)
    cells = [v.min(), np.percentile(v, 10), np.median(v), np.percentile(v, 90), v.max()]
    return f"| {label} | {len(v)} | " + " | ".join(f"{c:.3f}" for c in cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--kb", type=Path, required=True)
    ap.add_argument("--floors", default="0.5 0.6 0.7 0.75 0.8 0.85 0.9", help="vector_floor values, space-separated")
    ap.add_argument("sets", type=Path, nargs="+")
    args = ap.parse_args()

    entries = read_jsonl(args.kb)
    ids = [e["id"] for e in entries]
    texts = [f"{e['question'].strip()}\n{e['answer'].strip()}" for e in entries]
    doc = embed(args.url, texts)

    print("## Cosine similarity of eval questions to the 47 entries")
    print()
    print("Entries embedded as ragstream embeds a Q/A row: question, newline, answer (`Document::embedding_text`).")
    print("(a) in-domain question vs its expected entry; (b) in-domain question vs the best entry that is not")
    print("expected; (c) out-of-domain question vs its best entry.")
    floors_rows = []
    for path in args.sets:
        cases = read_jsonl(path)
        q = embed(args.url, [c["question"] for c in cases])
        sims = q @ doc.T
        a, b, c, top1, top3, n_in = [], [], [], 0, 0, 0
        for case, row in zip(cases, sims):
            expected = case["expected"]
            expected = [expected] if isinstance(expected, str) else expected
            if expected:
                n_in += 1
                mask = np.array([i in expected for i in ids])
                a.append(float(row[mask].max()))
                b.append(float(row[~mask].max()))
                order = np.argsort(-row)
                top1 += ids[order[0]] in expected
                top3 += any(ids[j] in expected for j in order[:3])
            else:
                c.append(float(row.max()))
        print()
        print(f"### {path.name}: vector-only recall@1 {top1 / max(n_in, 1):.3f}, recall@3 {top3 / max(n_in, 1):.3f}")
        print()
        print("| group | n | min | p10 | median | p90 | max |")
        print("|---|---|---|---|---|---|---|")
        print(stats_row("(a) in domain, expected entry", a))
        print(stats_row("(b) in domain, best wrong entry", b))
        print(stats_row("(c) out of domain, best entry", c))
        for f in (float(x) for x in args.floors.split()):
            floors_rows.append(
                f"| {path.name} | {f} | {np.mean(np.array(a) > f):.3f} | {np.mean(np.array(b) > f):.3f} "
                f"| {np.mean(np.array(c) > f) if c else float('nan'):.3f} |"
            )
    print()
    print("### Share of questions whose cosine is above a floor")
    print()
    print("| set | floor | (a) expected entry above | (b) a wrong entry above | (c) out of domain, some entry above |")
    print("|---|---|---|---|---|")
    print("\n".join(floors_rows))

    # Throughput over HTTP, as ragstream calls the server: the 47 entries in batches of 32
    # (kb.embeddings.batch_size), and the questions of the first set one request each (a search).
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        embed(args.url, texts)
        runs.append(len(texts) / (time.perf_counter() - t))
    questions = [c["question"] for c in read_jsonl(args.sets[0])]
    lat = []
    for text in questions:
        t = time.perf_counter()
        embed(args.url, [text])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    print()
    print("## Embedding throughput (this machine, over HTTP on 127.0.0.1)")
    print()
    print(f"- the 47 entries (question + answer, batches of 32), 3 runs: {min(runs):.1f} / {statistics.median(runs):.1f} / "
          f"{max(runs):.1f} texts/s (min / median / max)")
    print(f"- {len(lat)} questions of {args.sets[0].name}, one request each: median {statistics.median(lat):.1f} ms, "
          f"p90 {lat[int(0.9 * (len(lat) - 1))]:.1f} ms, max {lat[-1]:.1f} ms ({1000 * len(lat) / sum(lat):.0f} questions/s)")


if __name__ == "__main__":
    main()
