"""The ``compressed_reader`` lm-eval model: compression + the non-neural lexical reader.

``--model compressed_reader --model_args tokenizer=NAME_OR_PATH,compressor=NAME[,options]``.
Rates are counted in ``tokenizer``'s tokens. QA is answered by
:func:`bench.lmeval.lexical_reader.extract_answer` on the compressed context; regeneration
returns the compressed context itself. It reads text only, so soft compressors are refused.
"""

from __future__ import annotations

import time
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from bench.compressors import TargetModel, build_compressor, capabilities_of, validate_options
from bench.generation import GenerationOutput
from bench.harness.answering import RunAccount, model_info, open_cache
from bench.lmeval.adapter import read_request, set_prompt
from bench.lmeval.lexical_reader import extract_answer
from bench.records import CompressedText


@register_model("compressed_reader")
class CompressedReaderLM(LM):  # type: ignore[misc]
    """Compression followed by a transparent lexical extractive reader (no neural model)."""

    def __init__(self, tokenizer: str, compressor: str | None = "none",
                 compression_cache: str | None = "off", batch_size: Any = 1,
                 max_batch_size: Any = None, device: Any = None, **options: Any) -> None:
        super().__init__()
        validate_options(compressor or "none", options)
        from transformers import AutoTokenizer

        from bench.hub import load_from_hub

        self.tokenizer_name_or_path = tokenizer
        loaded = load_from_hub(lambda: AutoTokenizer.from_pretrained(tokenizer), tokenizer,
                               "tokenizer", "tokenizer= in --model_args")
        self.target = TargetModel(name=f"lexical-reader[{tokenizer}]", tokenizer=loaded)
        self.compression_cache = compression_cache
        self.use_compressor(compressor or "none", options)

    def use_compressor(self, name: str, options: dict[str, Any]) -> None:
        """Answer with compressor ``name`` from now on, keeping the loaded tokenizer."""
        from bench.harness.frontend import CompressionFrontEnd

        self.compressor = build_compressor(name, self.target, options)
        capabilities = capabilities_of(name)
        self.frontend = CompressionFrontEnd(self.compressor, capabilities, self.target,
                                            open_cache(self.compression_cache, capabilities))
        self.account = RunAccount(self.frontend, None)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        read = [read_request(req) for req in requests]
        prepared = self.frontend.prepare(read)
        answers = []
        for req, request, prep in zip(requests, read, prepared, strict=True):
            compressed = prep.compressed
            if not isinstance(compressed, CompressedText):
                raise TypeError(f"compressed_reader reads text; compressor "
                                f"{self.compressor.name!r} produces {type(compressed).__name__}")
            set_prompt(req, prep.text_prompt())
            start = time.perf_counter()
            if request.doc.get("kind") == "regeneration":
                answer = compressed.text
            else:
                answer = extract_answer(compressed.text, str(request.doc.get("question", "")))
            seconds = time.perf_counter() - start
            tokens = self.frontend.target.count_tokens(answer)
            self.account.file(request, prep, GenerationOutput(answer, tokens, seconds, seconds),
                              request.text)
            answers.append(answer)
        return answers

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError("compressed_reader only answers generate_until tasks")

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        raise NotImplementedError("compressed_reader only answers generate_until tasks")

    def get_model_info(self) -> dict[str, Any]:
        return model_info(self.account.run_info(self.compressor, self.frontend.target.name,
                                                reader="lexical extractive reader (non-neural)"))
