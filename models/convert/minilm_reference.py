#!/usr/bin/env python3
"""Reference sentence embeddings for all-MiniLM-L6-v2, computed independently of candle.

A float64 numpy implementation of the BERT encoder (Devlin et al. 2019) as used by
Sentence-BERT (Reimers & Gurevych, EMNLP 2019) with the MiniLM-L6-H384 weights
(Wang et al., NeurIPS 2020): embeddings + 6 post-LayerNorm transformer layers, mean
pooling over the attention mask, L2 normalisation. Weights are read from the same
`model.safetensors` the Rust crate loads; tokens come from the `tokenizers` Python
package reading the same `tokenizer.json`, with padding and truncation switched off
(the shipped file pads and truncates at 128).

Writes models/fusion-models/tests/fixtures/minilm_reference.json, which the Rust test
`text_encoder_reference` compares against (cosine >= 0.9999 per sentence).

Usage: models/convert/minilm_reference.py [--package DIR] [--out FILE]

It runs itself inside a throw-away venv (numpy, safetensors, tokenizers from PyPI,
~145 MB) under ${FUSION_VENV_DIR:-${FUSION_CACHE_DIR:-~/.cache/fusion}/venvs}/minilm-reference,
created on first use. Fetch the weights first: scripts/fetch-models --text-only.
"""

import hashlib
import json
import math
import os
import subprocess
import sys
import venv

REQUIREMENTS = ["numpy==2.4.6", "safetensors==0.8.0", "tokenizers==0.23.3"]
VENV_NAME = "minilm-reference"

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_PACKAGE = os.path.join(REPO, "models", "packages", "minilm-l6-v2")
DEFAULT_OUT = os.path.join(REPO, "models", "fusion-models", "tests", "fixtures", "minilm_reference.json")

# Invented clinical sentences, none longer than 256 tokens (the model's
# max_seq_length), so the reference needs no chunking.
SENTENCES = [
    "No acute cardiopulmonary process.",
    "Small left pleural effusion with adjacent atelectasis; no pneumothorax.",
    "Findings are concerning for right lower lobe pneumonia. Clinical correlation is recommended.",
    "Endotracheal tube terminates 4 cm above the carina. Nasogastric tube courses below the diaphragm.",
    "Cardiomegaly with mild pulmonary vascular congestion, possibly early interstitial edema.",
    "FINDINGS: Portable AP chest radiograph at 06:42. Compared with the prior study from 3 days ago, "
    "the right internal jugular central venous catheter is unchanged with its tip in the mid SVC. "
    "There is interval increase in the moderate right pleural effusion with associated compressive "
    "atelectasis of the right lower lobe; superimposed consolidation cannot be excluded. The left lung "
    "is clear. No pneumothorax. The cardiomediastinal silhouette is stable and within normal limits for "
    "technique. Healed fractures of the left 5th and 6th ribs. IMPRESSION: 1. Increasing right pleural "
    "effusion and right basilar opacity, atelectasis versus pneumonia. 2. Lines and tubes as above.",
]


def venv_python():
    base = os.environ.get("FUSION_VENV_DIR") or os.path.join(
        os.environ.get("FUSION_CACHE_DIR")
        or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fusion"),
        "venvs",
    )
    path = os.path.join(base, VENV_NAME)
    py = os.path.join(path, "bin", "python")
    stamp = os.path.join(path, ".requirements")
    want = "\n".join(REQUIREMENTS)
    if not (os.path.isfile(stamp) and open(stamp).read() == want):
        print(f"minilm_reference: creating venv {path}", file=sys.stderr)
        venv.create(path, with_pip=True, clear=True)
        subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                        "--only-binary=:all:", *REQUIREMENTS], check=True)
        with open(stamp, "w") as f:
            f.write(want)
    return py


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(package, out):
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    weights_path = os.path.join(package, "model.safetensors")
    tokenizer_path = os.path.join(package, "tokenizer.json")
    for p in (weights_path, tokenizer_path):
        if not os.path.isfile(p):
            sys.exit(f"minilm_reference: {p} is missing; run scripts/fetch-models --text-only")
    with open(os.path.join(package, "config.json")) as f:
        cfg = json.load(f)
    w = {k: v.astype(np.float64) for k, v in load_file(weights_path).items()}
    tok = Tokenizer.from_file(tokenizer_path)
    tok.no_padding()
    tok.no_truncation()

    heads = cfg["num_attention_heads"]
    eps = cfg["layer_norm_eps"]
    erf = np.vectorize(math.erf)

    def layer_norm(x, prefix):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def linear(x, prefix):
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    def encode(ids):
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = layer_norm(x, "embeddings.LayerNorm")
        d = x.shape[-1] // heads
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (linear(x, p + "attention.self." + m).reshape(n, heads, d).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(1, 0, 2).reshape(n, heads * d)
            x = layer_norm(linear(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = linear(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
            x = layer_norm(linear(h, p + "output.dense") + x, p + "output.LayerNorm")
        # Single unpadded sequence: mean pooling over the mask is the plain mean.
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)

    items = []
    for text in SENTENCES:
        enc = tok.encode(text)
        ids = list(enc.ids)
        if len(ids) > 256:
            sys.exit(f"minilm_reference: sentence has {len(ids)} tokens, more than 256")
        e = encode(np.array(ids))
        items.append({"text": text, "token_ids": ids, "embedding": [float(v) for v in e]})
        print(f"{len(ids):4d} tokens  {e[:5]}  {text[:50]!r}", file=sys.stderr)

    doc = {
        "description": "all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised), "
                       "computed by models/convert/minilm_reference.py: float64 numpy BERT, "
                       "tokens from the tokenizers package with padding and truncation off",
        "model_sha256": sha256(weights_path),
        "tokenizer_sha256": sha256(tokenizer_path),
        "requirements": REQUIREMENTS,
        "sentences": items,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"minilm_reference: wrote {len(items)} reference vectors to {out}", file=sys.stderr)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", default=DEFAULT_PACKAGE)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    if os.environ.get("_FUSION_IN_VENV") != VENV_NAME:
        py = venv_python()
        env = dict(os.environ, _FUSION_IN_VENV=VENV_NAME)
        os.execve(py, [py, os.path.abspath(__file__), *sys.argv[1:]], env)
    main(os.path.abspath(args.package), os.path.abspath(args.out))
