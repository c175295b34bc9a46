"""Training configuration (one frozen dataclass) and the named presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bench.substrate.errors import InputError

if TYPE_CHECKING:
    import torch

    from bench.compressors.soft._layout import Layout

STAGES = ("pretrain", "finetune")
METHODS = ("500x", "icae", "gist", "autocompressor")
LM_TRAINING_METHODS = ("gist", "autocompressor")
"""The methods that train the LM itself (the others train an encoder beside a frozen base)."""
SCHEDULES = ("constant", "linear")
DTYPES = ("auto", "float32", "bfloat16")
_AT_LEAST = {"num_mem": 1, "steps": 1, "batch_size": 1, "grad_accum": 1, "lora_r": 1,
             "training_substeps": 1, "segments_per_substep": 1, "save_every": 1, "dev_size": 1,
             "max_answer_tokens": 1, "max_train_examples": 1, "warmup_steps": 0,
             "eval_every": 0, "eval_generate": 0, "keep_checkpoints": 0}
"""The whole-number settings and their least value (keep_checkpoints 0: keep all)."""
_ABOVE_ZERO = ("lr", "peak_tflops")
_AT_LEAST_ZERO = ("weight_decay", "max_grad_norm")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on (recorded in every checkpoint's config)."""

    stage: str
    method: str
    base: str
    data: str
    out: str
    num_mem: int = 4
    layout: str = "reference"
    context_length: int = 500
    decoder_positions: str | None = None
    max_qa_len: int = 46
    loss_on_padding: bool = True
    revision: str | None = None
    dev: str | None = None
    init_from: str | None = None
    steps: int = 1000
    lr: float = 1e-4
    batch_size: int = 4
    grad_accum: int = 1
    warmup_steps: int = 300
    schedule: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_context_tokens: int = 480
    max_answer_tokens: int = 64
    lora_r: int = 64
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    dtype: str = "auto"
    gradient_checkpointing: bool = False
    seed: int = 0
    dev_size: int = 200
    eval_every: int = 500
    eval_generate: int = 16
    save_every: int = 1000
    keep_checkpoints: int = 2
    max_train_examples: int | None = None
    progress: bool = True
    peak_tflops: float | None = None
    export_500x_repo: bool = False
    lora: bool = False
    training_substeps: int = 2
    segments_per_substep: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.decoder_positions is not None and self.method != "500x":
            raise ValueError("decoder_positions applies to method 500x only")
        self.layout_settings()
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be 'constant' or 'linear', got {self.schedule!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Refuse counts below their least value and rates that are not finite or negative
        (``--lr inf``, ``--save-every 0``), naming the flag."""
        for name, least in _AT_LEAST.items():
            value = getattr(self, name)
            if value is not None and value < least:
                raise _bad_number(name, f"must be a whole number >= {least}, got {value}")
        for name in (*_ABOVE_ZERO, *_AT_LEAST_ZERO):
            value = getattr(self, name)
            if value is None:
                continue
            above = name in _ABOVE_ZERO
            if not math.isfinite(value) or value < 0 or (above and value == 0):
                raise _bad_number(name, f"must be a finite number {'>' if above else '>='} 0, "
                                        f"got {value}")
        if not 0 <= self.lora_dropout < 1:
            raise _bad_number("lora_dropout", f"must be a number in [0, 1), got "
                                              f"{self.lora_dropout}")

    def layout_settings(self) -> Layout:
        """The input layout and training targets of this run (validated)."""
        from bench.compressors.soft._layout import Layout

        positions = self.decoder_positions
        if self.layout == "compressbench" and positions is None:
            positions = "continue"
        return Layout(name=self.layout, context_length=self.context_length,
                      max_context_tokens=self.max_context_tokens, decoder_positions=positions,
                      max_qa_len=self.max_qa_len, loss_on_padding=self.loss_on_padding)

    def torch_dtype(self, cuda: bool) -> torch.dtype:
        """The dtype the base model loads in (``auto``: bfloat16 on CUDA, else float32)."""
        import torch

        name = self.dtype if self.dtype != "auto" else ("bfloat16" if cuda else "float32")
        dtype: torch.dtype = getattr(torch, name)
        return dtype

    @property
    def kind(self) -> str:
        """The example kind of this stage: regeneration (pretrain) or QA (finetune)."""
        return "regeneration" if self.stage == "pretrain" else "qa"

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["lora_targets"] = list(self.lora_targets)
        return values


def _bad_number(name: str, problem: str) -> InputError:
    return InputError(problem, field="--" + name.replace("_", "-"))


# 500xCompressor paper, Table 3 (500 -> 4 tokens): the only setting whose step counts are
# recorded in REFERENCE.md. ICAE as a baseline there was trained with the same schedule.
_PAPER_4 = {"num_mem": 4, "batch_size": 4, "warmup_steps": 300, "context_length": 500,
            "max_context_tokens": 480, "max_qa_len": 46, "lora_r": 64, "lora_alpha": 32,
            "lora_dropout": 0.05}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper-500x-4": {
        "pretrain": {**_PAPER_4, "method": "500x", "steps": 66_600, "lr": 1e-4},
        "finetune": {**_PAPER_4, "method": "500x", "steps": 15_000, "lr": 5e-5},
    },
    "paper-icae-4": {
        "pretrain": {**_PAPER_4, "method": "icae", "steps": 66_600, "lr": 1e-4},
        "finetune": {**_PAPER_4, "method": "icae", "steps": 15_000, "lr": 5e-5},
    },
    "tiny-cpu": {
        stage: {"num_mem": 4, "batch_size": 4, "warmup_steps": 10, "steps": 100, "lr": 1e-3,
                "context_length": 64, "max_context_tokens": 64, "max_answer_tokens": 16,
                "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "eval_every": 50,
                "eval_generate": 4, "save_every": 50, "dev_size": 16}
        for stage in STAGES
    },
}


def preset_values(name: str, stage: str) -> dict[str, Any]:
    """The settings preset ``name`` defines for ``stage`` (clear error for unknown names)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name][stage])
