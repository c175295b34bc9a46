"""The forward-pass memory of the LLMLingua family: what it answers from memory, and when."""

from types import SimpleNamespace
from typing import Any

import torch

from bench.compressors._lingua_models import ForwardMemo


class CountingModel:
    def __init__(self) -> None:
        self.calls = 0
        self.config = "the wrapped model's"

    def __call__(self, input_ids: torch.Tensor, **kwargs: Any) -> Any:
        self.calls += 1
        return SimpleNamespace(logits=input_ids.float() * self.calls)


def test_a_repeated_pass_without_cache_is_answered_from_memory() -> None:
    model = CountingModel()
    memo = ForwardMemo(model)
    ids = torch.tensor([[1, 2, 3]])
    first = memo(ids, attention_mask=torch.ones_like(ids), use_cache=True)
    again = memo(torch.tensor([[1, 2, 3]]), attention_mask=torch.ones_like(ids), use_cache=True)
    assert again is first and model.calls == 1
    memo(torch.tensor([[1, 2, 4]]), attention_mask=torch.ones_like(ids), use_cache=True)
    memo(ids, attention_mask=torch.tensor([[1, 1, 0]]), use_cache=True)
    memo(ids.to(torch.int32), attention_mask=torch.ones_like(ids), use_cache=True)
    assert model.calls == 4
    assert memo.config == "the wrapped model's"


def test_passes_with_a_cache_always_run_and_forget_empties_the_memory() -> None:
    model = CountingModel()
    memo = ForwardMemo(model)
    ids = torch.tensor([[5, 6]])
    memo(ids, past_key_values=((torch.zeros(1), torch.zeros(1)),))
    memo(ids, past_key_values=((torch.zeros(1), torch.zeros(1)),))
    assert model.calls == 2
    memo(ids, past_key_values=None)
    memo(ids, past_key_values=None)
    assert model.calls == 3
    memo.forget()
    memo(ids, past_key_values=None)
    assert model.calls == 4
