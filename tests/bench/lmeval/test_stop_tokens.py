"""Text answers of ``--model compressed`` (lm-eval's ``hf`` generation) end at any EOS id of
the target's generation config, not only the tokenizer's, and count their tokens to it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.harness import sample_log
from tests.stop_tokens import END_OF_TEXT, END_OF_TURN, with_chat_eos

TASK = "compressed_regeneration_96"
CONTEXTS = ("Lily saw a big red ball in the park.",
            "Tom went to the lake with his dog and they swam all day long.")
LIMIT = 12


@contextlib.contextmanager
def forced_in_row(model: torch.nn.Module, row: int, token: int, step: int) -> Iterator[None]:
    """Make ``token`` the argmax of batch row ``row`` at the ``step``-th forward call."""
    calls = itertools.count()

    def force(module: torch.nn.Module, args: Any, output: Any) -> None:
        if next(calls) == step:
            output.logits[row, -1, token] = output.logits.max() + 100.0

    handle = model.register_forward_hook(force)
    try:
        yield
    finally:
        handle.remove()


def _requests() -> list[Any]:
    from lm_eval.api.instance import Instance

    docs = [{"kind": "regeneration", "instruction": "Please repeat the following text exactly.",
             "context": context, "question": "", "qid": f"q{i}"}
            for i, context in enumerate(CONTEXTS)]
    gen_kwargs = {"until": [], "max_gen_toks": LIMIT, "do_sample": False}
    return [Instance("generate_until", doc,
                     (f"{doc['instruction']} Text: {doc['context']} Repeated text:", gen_kwargs),
                     i, metadata=(TASK, i, 1))
            for i, doc in enumerate(docs)]


def _generated_tokens(requests: list[Any]) -> list[int]:
    """The ``generated_tokens`` each request's sample record holds."""
    records = [sample_log.take_record(request.doc) for request in requests]
    return [record.generated_tokens for record in records if record is not None]


@pytest.mark.parametrize("token", [END_OF_TEXT, END_OF_TURN])
def test_a_text_answer_ends_at_any_eos_id_and_counts_it(tiny_model_dir: Path, tmp_path: Path,
                                                        token: str) -> None:
    from bench.lmeval.compressed_model import CompressedLM

    folder = with_chat_eos(tiny_model_dir, tmp_path / "chat")
    lm = CompressedLM(pretrained=str(folder), compressor="none", compression_cache="off",
                      compressed_bits="off", device="cpu", batch_size=2)
    assert lm.tokenizer.eos_token == END_OF_TURN and lm.tokenizer.pad_token != END_OF_TURN
    sample_log.clear()
    requests = _requests()
    free = lm.generate_until(requests)
    assert _generated_tokens(requests) == [LIMIT] * 2
    stop = lm.tokenizer.convert_tokens_to_ids(token)
    with forced_in_row(lm.model, 0, stop, 3):
        answers = lm.generate_until(requests)
    counts = _generated_tokens(requests)
    ended = [i for i, (a, b) in enumerate(zip(answers, free, strict=True)) if a != b]
    assert len(ended) == 1 and free[ended[0]].startswith(answers[ended[0]])
    assert counts[ended[0]] == 4 and counts[1 - ended[0]] == LIMIT  # 3 tokens and the EOS
    assert token not in answers[ended[0]]
