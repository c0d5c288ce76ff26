"""The eval table of bench/kb_eval_real.sh: one row per eval set, mode and vector_floor.

    python report.py EVAL_DIR SET…   # reads EVAL_DIR/SET@MODE@FLOOR@MIN_SCORE.json (`ragstream kb eval --json`)
"""

import json
import sys
from pathlib import Path


def main() -> None:
    folder = Path(sys.argv[1])
    print("| set | min_score | mode | vector_floor | recall@1 | recall@k | MRR@k | rejection | right | suggested (right one in) "
          "| suggested (without it) | no match in domain | wrong |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in sys.argv[2:]:
        runs = []
        for path in folder.glob(f"{name}@*.json"):
            _, mode, floor, min_score = path.name[: -len(".json")].split("@")
            key = (float(min_score), mode != "fulltext", float(floor) if floor != "-" else 0.0)
            runs.append((key, path, mode, floor, min_score))
        for _, path, mode, floor, min_score in sorted(runs):
            d = json.loads(path.read_text())
            a = d["answers"]
            size = f"{d['in_domain']} + {d['out_of_domain']}"
            cells = [f"{name} ({size})", min_score, "full text" if mode == "fulltext" else "hybrid",
                     "—" if floor == "-" else floor]
            cells += [f"{d[k]:.3f}" for k in ("recall_at_1", "recall_at_k", "mrr", "rejection")]
            cells += [f"{a[k]:.3f}" for k in ("right", "suggested_right", "suggested_wrong", "no_match", "wrong")]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
