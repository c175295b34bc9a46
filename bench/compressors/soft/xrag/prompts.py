"""The texts xRAG (Cheng et al. 2024, Hannibal046/xRAG) feeds its LLM, in Mistral's ``[INST]``
chat format, with one ``<xRAG>`` placeholder per document.

* Question answering: the QA template of the published tutorial, whose ``Background:`` holds
  the placeholders (one per document, separated by spaces) and whose question ends with "?".
* Regeneration: the first paraphrase instruction of the pretraining task,
  ``[INST] Background: <xRAG> means the same as [/INST]``.
* Training: pretraining regenerates a document after a paraphrase instruction drawn from
  :data:`PARAPHRASE_INSTRUCTIONS`; fine-tuning answers ``Refer to the background document:
  {placeholders}\\n\\n{question}`` (the teacher reads the background as text instead). The
  loss covers what follows ``[/INST]`` (the document or the answer) and ``</s>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

XRAG_TOKEN = "<xRAG>"
PAD_TOKEN = "<pad>"
IGNORE_INDEX = -100

QA_TEMPLATE = ("[INST] Refer to the background document and answer the questions:\n\n"
               "Background: {documents}\n\nQuestion: {question} [/INST] The answer is:")
FINETUNE_BACKGROUND = "Refer to the background document: {background}\n\n"
PARAPHRASE_INSTRUCTIONS = (
    "Background: {xrag} means the same as",
    "Background: {xrag} Can you put the above sentences in your own terms?",
    "Background: {xrag} Please provide a reinterpretation of the preceding background text.",
    "These two expressions are equivalent in essence:\n(1) {xrag}\n(2)",
    "Background: {xrag} is a paraphrase of what?",
    "Background: {xrag} Could you give me a different version of the background sentences "
    "above?",
    "In other words, background: {xrag} is just another way of saying:",
    "You're getting across the same point whether you say background: {xrag} or",
    "Background: {xrag} After uppacking the ideas in the background information above, we got:",
    "Background: {xrag} Please offer a restatement of the background sentences I've just read.",
    "Background: {xrag}, which also means:",
    "Strip away the mystery, and you'll find background: {xrag} is simply another rendition "
    "of:",
    "The essence of background: {xrag} is captured again in the following statement:",
)
"""The pretraining instructions, as published (including their typo)."""
REGENERATION_INSTRUCTION = 0
"""The instruction of regeneration at inference: the first one."""


def placeholders(count: int) -> str:
    """``count`` ``<xRAG>`` tokens separated by spaces."""
    if count < 1:
        raise ValueError(f"xrag: a prompt needs at least one document, got {count}")
    return " ".join([XRAG_TOKEN] * count)


def question_text(question: str) -> str:
    """The question as the prompts hold it: ending with one "?"."""
    stripped = question.strip()
    return stripped if stripped.endswith("?") else f"{stripped}?"


def user_turn(content: str) -> str:
    """One user turn in Mistral's chat format."""
    return f"[INST] {content.strip()} [/INST]"


def qa_prompt(documents: int, question: str) -> str:
    """The tutorial's QA prompt over ``documents`` placeholders."""
    return QA_TEMPLATE.format(documents=placeholders(documents),
                              question=question_text(question))


def paraphrase_instruction(index: int, documents: int = 1) -> str:
    """Pretraining instruction ``index`` over ``documents`` placeholders."""
    return PARAPHRASE_INSTRUCTIONS[index].format(xrag=placeholders(documents))


def regeneration_prompt(documents: int) -> str:
    """The regeneration prompt: the first paraphrase instruction as a user turn."""
    return user_turn(paraphrase_instruction(REGENERATION_INSTRUCTION, documents))


def finetune_user(background: str, question: str) -> str:
    """The fine-tuning user message: ``background`` is the placeholders (student) or the
    context as text (teacher)."""
    return FINETUNE_BACKGROUND.format(background=background) + question_text(question)


@dataclass(frozen=True)
class LabelledIds:
    """LLM input ids and their labels (``IGNORE_INDEX`` on the prompt)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def targets(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def chat_example(tokenizer: Any, user: str, reply: str, max_length: int) -> LabelledIds:
    """``[INST] user [/INST]reply</s>`` tokenised with BOS and cut to ``max_length``; the
    labels hide the user turn (its length measured on its own, as the reference does)."""
    prompt = user_turn(user)
    text = (prompt + reply.strip() + str(tokenizer.eos_token)).strip()
    ids = _ids(tokenizer, text, max_length)
    hidden = min(len(_ids(tokenizer, prompt, max_length)), len(ids))
    labels = [IGNORE_INDEX] * hidden + ids[hidden:]
    return LabelledIds(tuple(ids), tuple(labels))


def _ids(tokenizer: Any, text: str, max_length: int) -> list[int]:
    ids: list[int] = tokenizer(text, max_length=max_length, truncation=True)["input_ids"]
    return ids


def pretraining_example(tokenizer: Any, document: str, instruction: int,
                        max_length: int) -> LabelledIds:
    """Regenerate ``document`` after paraphrase instruction ``instruction``."""
    return chat_example(tokenizer, paraphrase_instruction(instruction), document.strip(),
                        max_length)


def finetuning_examples(tokenizer: Any, chunks: Sequence[str], background: str,
                        question: str, answer: str, max_length: int
                        ) -> tuple[LabelledIds, LabelledIds]:
    """The student (one placeholder per chunk) and teacher (the background as text)
    examples of one question."""
    student = chat_example(tokenizer, finetune_user(placeholders(len(chunks)), question),
                           answer, max_length)
    teacher = chat_example(tokenizer, finetune_user(background, question), answer, max_length)
    return student, teacher
