"""Names of run folders: the model, the compressor and its settings, readable in ``ls``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from bench.lmeval.plugin import MODELS as COMPRESSBENCH_MODELS
from leaderboard._runs import RUNTIME_KEYS, model_name, parse_model_args

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
MAX_LENGTH = 120


def run_folder_name(model: str, model_args: str | Mapping[str, Any]) -> str:
    """The folder for one lm-eval run (``--model`` and ``--model_args``), e.g.
    ``Meta-Llama-3-8B-Instruct__llmlingua2_rate=0.25`` or ``stories260K__hf``.

    The base model comes first (an HF id's name part, a local folder's name; the
    ``compressed_reader`` as ``lexical-reader-<tokenizer>``), then the compressor (a stock
    backend's name when there is none) and the settings that are not runtime options, paths
    shortened to their last component. Long names end in a hash of the full name.
    """
    args = parse_model_args(model_args, "--model_args")
    stock = model not in COMPRESSBENCH_MODELS and "compressor" not in args
    compressor = model if stock else args.get("compressor", "none")
    base = args.get("pretrained") or args.get("tokenizer") or args.get("model") or model
    base = model_name(base).rsplit("/", 1)[-1]
    if model == "compressed_reader":
        base = f"lexical-reader-{base}"
    settings = [
        f"{key}={model_name(value).rsplit('/', 1)[-1]}"
        for key, value in sorted(args.items())
        if key not in RUNTIME_KEYS and key != "compressor"
    ]
    name = _UNSAFE.sub("-", "_".join([f"{base}_", compressor, *settings])).strip("-.")
    if len(name) > MAX_LENGTH:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
        name = f"{name[: MAX_LENGTH - 13]}-{digest}"
    return name
