"""The ``compressed`` lm-eval model: compress the context, then answer with a HF causal LM.

``--model compressed --model_args pretrained=HF_ID_OR_PATH,compressor=NAME[,options]``.
Every ``--model_args`` key that lm-eval's ``hf`` backend accepts goes to it (``dtype``,
``device``, ``revision`` ...); ``compression_cache`` (``off``, a directory, default the user
cache) and ``compressed_bits`` (``llmzip``, the default, or ``off``: see
:mod:`bench.compressors.bits`) are ours; every other key is a compressor option, and an
unknown one is an error.
Text compressions are answered by the ``hf`` backend itself, so ``compressor=none`` gives
exactly the generations of ``--model hf``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from transformers import LogitsProcessor, LogitsProcessorList

from bench.compressors import (
    SoftDecoder,
    TargetModel,
    build_compressor,
    capabilities_of,
    validate_options,
)
from bench.generation import GenerationOutput, GenerationSettings, eos_token_ids
from bench.harness.accounting import ModelShape
from bench.harness.answering import (
    RunAccount,
    model_info,
    open_cache,
    settings_from_gen_kwargs,
    text_bits_setting,
)
from bench.harness.frontend import CompressionFrontEnd, PreparedRequest
from bench.lmeval.adapter import (
    BatchGeneration,
    GenerationRequest,
    answers_noted,
    hf_backend_arguments,
    read_request,
    set_prompt,
    use_processes,
)

_HF_ARGS = hf_backend_arguments()


class _FirstTokenTimer(LogitsProcessor):
    """Notes when the first new token's scores are ready (time to first token)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.first is None:
            self.first = time.perf_counter()
        return scores


@register_model("compressed")
class CompressedLM(BatchGeneration, HFLM):  # type: ignore[misc]
    """lm-eval model that compresses each request's context before answering."""

    def __init__(self, pretrained: str, compressor: str | None = "none",
                 compression_cache: str | None = None, compressed_bits: str | None = None,
                 **kwargs: Any) -> None:
        code_text = text_bits_setting(compressed_bits)
        hf_kwargs = {k: v for k, v in kwargs.items() if k in _HF_ARGS}
        options = {k: v for k, v in kwargs.items() if k not in _HF_ARGS}
        validate_options(compressor or "none", options)  # before minutes of loading
        self._load_target(pretrained, hf_kwargs)
        self._shard_across_processes()
        self.target_name = str(pretrained)
        self.compression_cache = compression_cache
        self.code_text = code_text
        self.use_compressor(compressor or "none", options)

    def use_compressor(self, name: str, options: dict[str, Any]) -> None:
        """Answer with compressor ``name`` from now on, keeping the loaded target model (a
        sweep runs several compressors that do not change the model's weights on one load)."""
        target = TargetModel(name=self.target_name, tokenizer=self.tokenizer, model=self.model)
        self.compressor = build_compressor(name, target, options)
        capabilities = capabilities_of(name)
        batch = self.batch_size if isinstance(self.batch_size, int) else 8
        self.frontend = CompressionFrontEnd(self.compressor, capabilities, target,
                                            open_cache(self.compression_cache, capabilities),
                                            batch)
        self.account = RunAccount(self.frontend, ModelShape.of(self.model), self.code_text)
        self._answer_timing: dict[str, tuple[float, float, int]] = {}
        self._last_batch_timing: tuple[float, float, list[int]] = (0.0, 0.0, [])
        self._rows_reported = 0

    def _load_target(self, pretrained: Any, hf_kwargs: dict[str, Any]) -> None:
        """lm-eval's ``hf`` loading; a hub id that cannot be loaded is one line."""
        if not isinstance(pretrained, str):  # an already loaded model object
            super().__init__(pretrained=pretrained, **hf_kwargs)
            return
        from bench.hub import load_from_hub

        def load() -> None:
            super(CompressedLM, self).__init__(pretrained=pretrained, **hf_kwargs)

        revision = hf_kwargs.get("revision")
        load_from_hub(load, pretrained, "target model", "pretrained= in --model_args",
                      revision=None if revision in (None, "main") else str(revision))

    def _shard_across_processes(self) -> None:
        """Data parallelism under ``accelerate launch`` on CPUs too (the hf backend needs GPUs)."""
        from accelerate import Accelerator, PartialState

        state = PartialState()
        if state.num_processes > 1 and self.world_size == 1:
            use_processes(self, Accelerator(), state.process_index, state.num_processes)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        if not requests:
            return []
        read = [read_request(req) for req in requests]
        window = self.max_length - max(
            settings_from_gen_kwargs(request.gen_kwargs, self.max_gen_toks).max_new_tokens
            for request in read)
        prepared = self.frontend.prepare(read, window)
        outputs: list[GenerationOutput | None] = [None] * len(requests)
        self._answer_text(requests, prepared, outputs, disable_tqdm)
        self._answer_soft(read, prepared, outputs)
        answers: list[str] = []
        for request, prep, output in zip(read, prepared, outputs, strict=True):
            assert output is not None
            self.account.file(request, prep, output, request.text)
            answers.append(output.text)
        return answers

    def _answer_text(self, requests: Sequence[Any], prepared: Sequence[PreparedRequest],
                     outputs: list[GenerationOutput | None], disable_tqdm: bool) -> None:
        """Answer the text compressions with the ``hf`` backend (``requests``: lm-eval's)."""
        prompts = {i: text for i, p in enumerate(prepared)
                   if (text := p.text_prompt()) is not None}
        if not prompts:
            return
        for i, prompt in prompts.items():
            set_prompt(requests[i], prompt)
        with answers_noted(self, self._note_timing):
            texts = super().generate_until([requests[i] for i in prompts], disable_tqdm)
        for (i, prompt), text in zip(prompts.items(), texts, strict=True):
            seconds, ttft, tokens = self._answer_timing.get(prompt, (0.0, 0.0, 0))
            outputs[i] = GenerationOutput(text, tokens, seconds, ttft)

    def _note_timing(self, prompt: Any) -> None:
        """File the timing of the batch that answered ``prompt`` (answers come in row order)."""
        seconds, ttft, counts = self._last_batch_timing
        row = self._rows_reported
        self._rows_reported += 1
        self._answer_timing[prompt] = (seconds, ttft, counts[row] if row < len(counts) else 0)

    def _answer_soft(self, requests: Sequence[GenerationRequest],
                     prepared: Sequence[PreparedRequest],
                     outputs: list[GenerationOutput | None]) -> None:
        chosen = [i for i, p in enumerate(prepared) if p.text_prompt() is None]
        if not chosen:
            return
        if not isinstance(self.compressor, SoftDecoder):
            raise TypeError(f"compressor {self.compressor.name!r} returned a soft compression "
                            "but does not implement SoftDecoder.generate")
        groups: dict[GenerationSettings, list[int]] = {}
        for i in chosen:
            settings = settings_from_gen_kwargs(requests[i].gen_kwargs, self.max_gen_toks)
            groups.setdefault(settings, []).append(i)
        batch = self.frontend.batch_size
        for settings, members in groups.items():
            for start in range(0, len(members), batch):
                group = members[start:start + batch]
                items = [(prepared[i].compressed, prepared[i].decoder_prompt()) for i in group]
                answers = self.compressor.generate(items, settings)
                for i, output in zip(group, answers, strict=True):
                    outputs[i] = output

    def generate_batch(self, context: Any, generate: Callable[..., Any],
                       generation_kwargs: dict[str, Any]) -> Any:
        """One batch of the ``hf`` backend, timed, with the new tokens of each row counted."""
        timer = _FirstTokenTimer()
        processors = generation_kwargs.pop("logits_processor", None) or LogitsProcessorList()
        processors.append(timer)
        start = time.perf_counter()
        output = generate(logits_processor=processors, **generation_kwargs)
        elapsed = time.perf_counter() - start
        first = timer.first - start if timer.first is not None else elapsed
        self._last_batch_timing = (elapsed, first, self._generated_counts(output, context))
        self._rows_reported = 0
        return output

    def _generated_counts(self, output: Any, context: Any) -> list[int]:
        """New tokens per row, up to and including the first end-of-sequence token (any of
        the model's EOS ids; a row that ended is padded after it)."""
        new_tokens = output[:, context.shape[1]:].tolist()
        stops = {self.eot_token_id, self.tokenizer.pad_token_id,
                 *eos_token_ids(self.tokenizer, self.model)}
        counts = []
        for row in new_tokens:
            ends = [i for i, token in enumerate(row) if token in stops]
            counts.append(ends[0] + 1 if ends else len(row))
        return counts

    def get_model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = super().get_model_info()
        info.update(model_info(self.account.run_info(self.compressor, str(self.pretrained))))
        return info
