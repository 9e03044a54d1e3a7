#!/usr/bin/env python3
"""Build the tiny Llama model for tests, benchmarks and examples/real-cpu.yaml (`make tiny-model`).

A randomly initialised ``LlamaForCausalLM`` made from a config alone (no download), in float32
safetensors (about 3.5 MB), with the shared tiny tokenizer (a 334-token byte-level BPE) copied
beside it.  The weights are random, so the text is gibberish, but every step is real: a forward
pass, a KV cache, sampling, detokenisation.  The tokenizer's ``tokenizer_config.json`` already
carries a one-line chat template, so the model gets no other.

The folder is rebuilt only when this script or the tokenizer changes: a stamp file records a
hash of both.  Building writes into a temporary folder and renames it, so a reader never sees a
half-written model.

    python scripts/tiny_model.py [--out examples/models/tiny-llama] [--tokenizer examples/models/tiny]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "examples" / "models" / "tiny-llama"
DEFAULT_TOKENIZER = REPO / "examples" / "models" / "tiny"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
STAMP = ".built-from"
SEED = 0

# Llama architecture, small enough to build in a second and run at thousands of tokens/s on a
# CPU core, large enough to have grouped-query attention (4 query heads, 2 key/value heads) and
# several layers, so batching and the KV cache are exercised as in a real model.
CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    # Ten times the usual 0.02: with tiny weights attention is nearly uniform, so positions and
    # token order hardly change the output and a test could not tell a wrong position or mask
    # from a right one.  At 0.2 they change the next token, and sampling is still diverse
    # (the most likely token has about 10 % of the probability).
    "initializer_range": 0.2,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}


def fingerprint(tokenizer: Path) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for name in TOKENIZER_FILES:
        digest.update((tokenizer / name).read_bytes())
    return digest.hexdigest()


def is_current(out: Path, tokenizer: Path) -> bool:
    stamp = out / STAMP
    return stamp.is_file() and stamp.read_text().strip() == fingerprint(tokenizer)


def build(out: Path, tokenizer: Path) -> Path:
    """Write the model folder at ``out`` unless it is already current; return ``out``."""
    if is_current(out, tokenizer):
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = json.loads((tokenizer / "tokenizer.json").read_text())["model"]["vocab"]
    torch.manual_seed(SEED)
    config = LlamaConfig(vocab_size=len(vocab), dtype="float32", **CONFIG)
    model = LlamaForCausalLM(config).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    staging.chmod(0o755)
    try:
        model.save_pretrained(staging)
        for name in TOKENIZER_FILES:
            shutil.copyfile(tokenizer / name, staging / name)
        (staging / STAMP).write_text(fingerprint(tokenizer) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER)
    args = parser.parse_args(argv)
    for name in TOKENIZER_FILES:
        if not (args.tokenizer / name).is_file():
            print(f"error: --tokenizer: {args.tokenizer / name} does not exist", file=sys.stderr)
            return 1
    was_current = is_current(args.out, args.tokenizer)
    build(args.out, args.tokenizer)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    state = "up to date" if was_current else "built"
    print(f"tiny model {state}: {args.out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
