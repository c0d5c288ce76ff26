"""Checks the numpy forward pass (m3e_numpy.py) against transformers + torch.

Not run by anything else: torch from PyPI pulls about 3 GB of CUDA packages, so it goes into a
throwaway venv (see README.md, "Validating the forward pass"):

    python3.11 -m venv /tmp/m3e-ref && /tmp/m3e-ref/bin/pip install torch transformers numpy tokenizers
    /tmp/m3e-ref/bin/python bench/embed-m3e/validate.py MODEL_DIR

Embeds the same texts both ways, in one padded batch for numpy and one text at a time for the
reference (so padding is checked too), and prints the largest absolute difference between the
normalised vectors. Exit 1 when it is 1e-4 or more, or when the token ids differ.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from m3e_numpy import M3eSmall  # noqa: E402

TEXTS = [
    "什么是自闭症（孤独症谱系障碍）？",
    "自闭症到底是一种什么病？",
    "孩子三岁了还不会说话，是不是自闭症？",
    "孩子老是撞头，怎么让他停下来",
    "照顾孩子太累了，我快撑不住了",
    "孩子只吃白米饭和面条，别的都不吃",
    "一天训练几个钟头才够",
    "星星的孩子长大以后能独立生活吗？",
    "今天天气怎么样",
    "明天上海的天气怎么样",
    "房贷利率是多少",
    "孩子晚上总是磨牙",
    "宝宝长痱子怎么办",
    "周末带孩子去哪里玩",
    "感统训练有用吗？ABA 和 floortime 有什么区别？",
    "孩子在幼儿园被同学欺负了，老师说他不合群。",
    "ragstream 是一个 Rust 服务器，用 OpenAI-compatible API 计算 embeddings。",
    "",
    "应用行为分析（ABA）把目标技能拆成小步骤，" * 3,
    # Longer than 512 tokens: both sides must truncate the same way.
    "孤独症谱系障碍是一种神经发育障碍，主要表现为社交沟通方面的持续困难。" * 20,
]


def reference(model_dir: str, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    vectors, ids = [], []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, truncation=True, max_length=512, return_tensors="pt")
            ids.append(enc["input_ids"][0].tolist())
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            vectors.append(torch.nn.functional.normalize(pooled, dim=-1)[0].numpy())
    return np.stack(vectors), ids


def main() -> int:
    model_dir = sys.argv[1]
    started = time.time()
    ref, ref_ids = reference(model_dir, TEXTS)
    print(f"reference (transformers {__import__('transformers').__version__}, torch {torch.__version__}): {time.time() - started:.1f} s")
    model = M3eSmall(model_dir)
    ids = model.tokenize(TEXTS)
    same_ids = ids == ref_ids
    ours = model.embed_ids(ids)
    diff = np.abs(ours - ref).max(axis=1)
    for text, d, n in zip(TEXTS, diff, (len(i) for i in ids)):
        print(f"{d:.2e}  {n:4d} tokens  {text[:30]}")
    worst = float(diff.max())
    cos = (ours * ref).sum(1)
    print(f"texts: {len(TEXTS)}; token ids identical: {same_ids}; max abs diff of normalised vectors: {worst:.3e}; min cosine(numpy, torch): {cos.min():.8f}")
    return 0 if same_ids and worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
