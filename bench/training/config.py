"""Training configuration (one frozen dataclass) and the named presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from bench.substrate.errors import InputError

if TYPE_CHECKING:
    import torch

    from bench.compressors.soft.encoder.layout import Layout

STAGES = ("pretrain", "finetune")
SCHEDULES = ("constant", "linear")
DTYPES = ("auto", "float32", "bfloat16")


def _about(help_text: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A field's ``--help`` text (and choices) for ``python -m bench.train``."""
    return {"help": help_text, "choices": choices}


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
    base: str = field(
        metadata=_about("base LM (hub id or local folder); frozen decoder and the encoder's base"))
    data: str
    out: str = field(
        metadata=_about("output folder: checkpoint-*/ (resumable), final/, metrics.json"))
    num_mem: int = field(default=4, metadata=_about("memory slots k"))
    # Settings only some methods read: their help comes with the methods' registrations.
    layout: str = "reference"
    context_length: int = 500
    decoder_positions: str | None = None
    max_qa_len: int = 46
    loss_on_padding: bool = True
    revision: str | None = field(
        default=None, metadata=_about("base model revision (branch, tag or commit) to load and "
                                      "record"))
    dev: str | None = field(
        default=None, metadata=_about("explicit dev file (else dev.parquet beside the data, else a"
                                      " seeded hold-out)"))
    init_from: str | None = field(
        default=None, metadata=_about("start from these trained weights (e.g. the pretrain run's "
                                      "final/ folder)"))
    steps: int = field(default=1000, metadata=_about("optimizer steps"))
    lr: float = field(default=1e-4, metadata=_about("peak learning rate (AdamW)"))
    batch_size: int = field(default=4, metadata=_about("examples per micro-batch per process"))
    grad_accum: int = field(
        default=1, metadata=_about("micro-batches accumulated per optimizer step"))
    warmup_steps: int = field(default=300, metadata=_about("linear warm-up steps"))
    schedule: str = field(
        default="constant", metadata=_about("after warm-up: constant or linear decay to 0",
                                            choices=SCHEDULES))
    weight_decay: float = field(default=0.0, metadata=_about("AdamW weight decay"))
    max_grad_norm: float = field(
        default=1.0, metadata=_about("gradient clipping norm (0 disables)"))
    max_context_tokens: int = field(
        default=480, metadata=_about("context tokens the encoder reads at evaluation (longer "
                                     "contexts are cut); compressbench layout: also in training"))
    max_answer_tokens: int = field(
        default=64, metadata=_about("QA answer tokens trained on / generated at eval"))
    lora_r: int = field(default=64, metadata=_about("LoRA rank"))
    lora_alpha: int = field(default=32, metadata=_about("LoRA alpha"))
    lora_dropout: float = field(default=0.05, metadata=_about("LoRA dropout"))
    lora_targets: tuple[str, ...] = field(
        default=("q_proj", "v_proj"), metadata=_about("comma-separated module names that get LoRA"))
    dtype: str = field(
        default="auto", metadata=_about("base model dtype: auto (bf16 on CUDA with autocast, fp32 "
                                        "on CPU), float32, bfloat16", choices=DTYPES))
    gradient_checkpointing: bool = field(
        default=False, metadata=_about("recompute layer activations in the backward pass (less "
                                       "memory)"))
    seed: int = field(default=0, metadata=_about("seed of initialisation, data order and dropout"))
    dev_size: int = field(default=200, metadata=_about("dev examples evaluated"))
    eval_every: int = field(
        default=500, metadata=_about("evaluate every N steps (0: never; also at step 0)"))
    eval_generate: int = field(
        default=16, metadata=_about("dev examples decoded for Rouge-L-F / SQuAD F1 at each eval"))
    save_every: int = field(
        default=1000, metadata=_about("write a resumable checkpoint every N steps"))
    keep_checkpoints: int = field(default=2, metadata=_about("resumable checkpoints kept"))
    max_train_examples: int | None = field(
        default=None, metadata=_about("use only the first N training examples"))
    progress: bool = field(
        default=True, metadata=_about("show a progress bar (loss, learning rate, tokens/s and, on "
                                      "GPUs, MFU)"))
    peak_tflops: float | None = field(
        default=None, metadata=_about("the GPU's dense bf16 peak TFLOP/s for MFU (known GPUs are "
                                      "looked up)"))
    # Settings only some methods read (see above).
    export_500x_repo: bool = False
    lora: bool = False
    training_substeps: int = 2
    segments_per_substep: int = 2
    extra: dict[str, Any] = field(default_factory=dict)
    """The values of the method's own options (its registration's options dataclass)."""

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"stage must be one of {STAGES}, got {self.stage!r}")
        self._check_method()
        self.layout_settings()
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be 'constant' or 'linear', got {self.schedule!r}")
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        self._check_numbers()

    def _check_method(self) -> None:
        """Refuse an unknown method, a setting without default (None) given to a method that
        does not read it, and options the method does not have."""
        from bench.training.registry import readers_of, training_method

        method = training_method(self.method)
        for spec in fields(self):
            if (spec.default is None and getattr(self, spec.name) is not None
                    and spec.name not in method.settings and (readers := readers_of(spec.name))):
                raise InputError(f"{spec.name} applies to method {' or '.join(readers)} only")
        own = {option.name for option in method.option_fields()}
        if unknown := sorted(set(self.extra) - own):
            raise InputError(f"method {self.method} has no option {unknown[0]}; its options: "
                             f"{', '.join(sorted(own)) or 'none'}")
        method.options_of(self.extra)

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
        from bench.compressors.soft.encoder.layout import Layout

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
        raise InputError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name][stage])
