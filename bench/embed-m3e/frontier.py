#!/usr/bin/env python3
"""What any of several hybrid scoring rules could reach on an eval set, with a real embedding model.

For each question, `ragstream kb search --json` lists every entry of the sample base (vector_floor 0, -k 47) with
its full-text score (the calibrated evidence weighed by BM25) and its cosine. Offline, this script re-scores
those hits under ragstream's own rule (evidence = max(full text, vector evidence), times the fused rank, RRF
k = 60) and under other rules, for a grid of vector_floor and min_score values, and reports for each required
rejection the best recall@3 any of them reaches. Rules and grid are chosen on the set itself: the figures are an
upper bound for these rule families, not what a tuned configuration would reach on new questions.

  frontier.py --bin target/release/ragstream --data DIR [--choose-on SAMPLE.jsonl] SET.jsonl...
  (the embeddings settings, RAGSTREAM_KB__EMBEDDINGS__*, in the environment, as bench/kb_eval_real.sh sets them)
"""
import argparse, json, os, subprocess, sys

RRF_K = 60.0
FLOORS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
MIN_SCORES = (0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def rules():
    out = {"ragstream: max(text, vector)": lambda t, ve, cos: max(t, ve)}
    for g in (0.7, 0.72, 0.74, 0.76, 0.78, 0.8):
        for lam in (0.0, 0.5):
            out[f"text counts {lam} below cosine {g}"] = (
                lambda g, lam: lambda t, ve, cos: max(ve, t if cos > g else t * lam))(g, lam)
    for w in (0.3, 0.5, 0.7):
        out[f"{w} text + {1 - w:.1f} vector"] = (lambda w: lambda t, ve, cos: w * t + (1 - w) * ve)(w)
    out["sqrt(text x vector)"] = lambda t, ve, cos: (t * ve) ** 0.5
    out["noisy-or"] = lambda t, ve, cos: 1 - (1 - t) * (1 - ve)
    return out


CONFIG = None


def dump(binary, data, path):
    env = dict(os.environ, RAGSTREAM_KB__SEARCH__VECTOR_FLOOR="0", RAGSTREAM_KB__SEARCH__CANDIDATES="1000")
    cases = []
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        case = json.loads(line)
        config = ["--config", CONFIG] if CONFIG else []
        run = subprocess.run([binary, *config, "kb", "search", "--data", data, "--json", "-k", "1000", "--min-score", "0",
                              case["question"]], env=env, capture_output=True, text=True, check=True)
        case["hits"] = json.loads(run.stdout) if run.stdout.strip() else []
        cases.append(case)
    return cases


def evaluate(cases, rule, floor, min_score, k=3):
    recall, rejected = [], []
    for case in cases:
        hits = case["hits"]
        near = sorted((h for h in hits if (h.get("vector_score") or -1) > floor), key=lambda h: -h["vector_score"])
        vrank = {h["id"]: i + 1 for i, h in enumerate(near)}
        scored = []
        for h in hits:
            trank = h.get("fulltext_rank")
            if trank is None and h["id"] not in vrank:
                continue
            cos = h.get("vector_score")
            cos = -1.0 if cos is None else cos
            rrf = (1 / (RRF_K + trank) if trank else 0) + (1 / (RRF_K + vrank[h["id"]]) if h["id"] in vrank else 0)
            ve = (cos - floor) / (1 - floor) if cos > floor else 0.0
            scored.append((h["id"], rule(h.get("fulltext_score") or 0.0, ve, cos), rrf))
        best = max((s[2] for s in scored), default=0.0)
        kept = sorted(((i, e * r / best) for i, e, r in scored if e > 0 and best > 0 and e * r / best >= min_score),
                      key=lambda x: -x[1])
        top = [i for i, _ in kept[:k]]
        if case["expected"]:
            recall.append(len(set(top) & set(case["expected"])) / len(case["expected"]))
        else:
            rejected.append(0.0 if top else 1.0)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    return mean(recall), mean(rejected)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True, help="data directory imported with the embeddings provider")
    ap.add_argument("--config", help="config file passed to ragstream (default: none given)")
    ap.add_argument("--choose-on", metavar="SET",
                    help="also pick, on this set, the settings nearest both targets (recall@3 0.95, rejection 0.9) "
                         "and show what they give on the other sets")
    ap.add_argument("sets", nargs="+")
    args = ap.parse_args()
    global CONFIG
    CONFIG = args.config
    if args.choose_on:
        chosen_on = dump(args.bin, args.data, args.choose_on)
        grid = [(name, rule, f, m) for name, rule in rules().items() for f in FLOORS for m in MIN_SCORES]
        scored = [(evaluate(chosen_on, rule, f, m), name, rule, f, m) for name, rule, f, m in grid]
        top = max(min(r / 0.95, rej / 0.9) for (r, rej), *_ in scored)
        picks = [x for x in scored if min(x[0][0] / 0.95, x[0][1] / 0.9) == top]
        others = {path: dump(args.bin, args.data, path) for path in args.sets}
        print(f"| chosen on {os.path.basename(args.choose_on)} | recall@3 there | rejection there | "
              + " | ".join(f"{os.path.basename(p)} recall@3 / rejection" for p in others) + " |")
        print("|---|---|---|" + "---|" * len(others))
        for (r, rej), name, rule, f, m in picks:
            cells = [evaluate(cases, rule, f, m) for cases in others.values()]
            print(f"| {name}, floor {f}, min_score {m} | {r:.3f} | {rej:.3f} | "
                  + " | ".join(f"{a:.3f} / {b:.3f}" for a, b in cells) + " |")
        print()
    print("| set | rejection at least | best recall@3 | its rejection | rule | vector_floor | min_score |")
    print("|---|---|---|---|---|---|---|")
    for path in args.sets:
        cases = dump(args.bin, args.data, path)
        points = [(r, rej, name, f, m)
                  for name, rule in rules().items() for f in FLOORS for m in MIN_SCORES
                  for r, rej in [evaluate(cases, rule, f, m)]]
        # Full text alone: no vector match clears a floor of 1.
        text_only = [(r, rej, "full text alone", "—", m)
                     for m in MIN_SCORES for r, rej in [evaluate(cases, lambda t, ve, cos: t, 1.0, m)]]
        # The check that this re-scoring is ragstream's: these two lines must read as kb eval's table does.
        for f in (0.7, 0.8):
            r, rej = evaluate(cases, rules()["ragstream: max(text, vector)"], f, 0.08)
            print(f"| {os.path.basename(path)} | check: ragstream at vector_floor {f}, min_score 0.08 | {r:.3f} "
                  f"| {rej:.3f} | (kb eval's recall@3 and rejection) | {f} | 0.08 |")
        for need in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9):
            for family in (text_only, points):
                ok = [p for p in family if p[1] >= need]
                if not ok:
                    print(f"| {os.path.basename(path)} | {need} | — | — | none reaches it | | |")
                    continue
                r, rej, name, f, m = max(ok, key=lambda p: (p[0], p[1]))
                print(f"| {os.path.basename(path)} | {need} | {r:.3f} | {rej:.3f} | {name} | {f} | {m} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
