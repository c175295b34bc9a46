"""State trees as JSON + safetensors: exact round trips, and files that do not parse refused."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.substrate.errors import InputError
from bench.training.tensor_tree import read_tree, write_tree


def test_an_optimizer_and_rng_state_come_back_exactly(tmp_path: Path) -> None:
    weight = torch.nn.Parameter(torch.randn(3, 2))
    optimizer = torch.optim.AdamW([weight], lr=1e-3)
    weight.grad = torch.randn(3, 2)
    optimizer.step()
    saved = optimizer.state_dict()
    named = {"state": {"w": saved["state"][0]},  # checkpoints name parameters
             "param_groups": [{**saved["param_groups"][0], "params": ["w"]}]}
    rng = torch.get_rng_state()
    tree: dict[str, Any] = {"optimizer": named, "python": random.getstate(), "torch": rng,
                            "nothing": None, "flags": [True, 1.5, "x"]}
    write_tree(tmp_path, "state", tree)
    back = read_tree(tmp_path, "state")
    assert back["python"] == tree["python"] and isinstance(back["python"][1], tuple)
    assert torch.equal(back["torch"], rng)
    assert back["optimizer"]["param_groups"] == named["param_groups"]
    assert isinstance(back["optimizer"]["param_groups"][0]["betas"], tuple)
    assert set(back["optimizer"]["state"]["w"]) == set(saved["state"][0])
    for name, value in saved["state"][0].items():
        assert torch.equal(back["optimizer"]["state"]["w"][name], value)
        assert back["optimizer"]["state"]["w"][name].dtype == value.dtype
    assert back["nothing"] is None and back["flags"] == [True, 1.5, "x"]


@pytest.mark.parametrize(("content", "problem"), [
    (b"\x80\x04\x95planted", "not valid JSON"),
    (b'{"a": {"__tensor__": "missing"}}', "names tensor 'missing', which is not in its"),
    (b'{"a": {"__tensor__": ["unhashable"]}}', "names tensor ['unhashable'], which is not in"),
])
def test_a_file_that_does_not_parse_is_an_error_naming_it(tmp_path: Path, content: bytes,
                                                          problem: str) -> None:
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(InputError) as raised:
        read_tree(tmp_path, "state")
    assert raised.value.path == str(tmp_path / "state.json") and problem in str(raised.value)


def test_a_damaged_tensor_file_is_an_error_naming_it(tmp_path: Path) -> None:
    write_tree(tmp_path, "state", {"t": torch.zeros(2)})
    (tmp_path / "state.safetensors").write_bytes(b"not tensors")
    with pytest.raises(InputError, match=r"state\.safetensors: not a readable safetensors"):
        read_tree(tmp_path, "state")
    assert json.loads((tmp_path / "state.json").read_text()) == {"t": {"__tensor__": "/t"}}


def test_a_tree_with_other_objects_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="/0: cannot store a object"):
        write_tree(tmp_path, "state", {"0": object()})
    with pytest.raises(TypeError, match="dict keys must be strings"):
        write_tree(tmp_path, "state", {0: 1})
    assert not list(tmp_path.iterdir())
