"""Texts made from a record's fields with a Jinja2 template.

Benchmark records carry ``question``, ``choices``, ``answer``, ``ctx``,
``endings`` ... rather than one ``text``; a template says how a record reads
as text, as lm-evaluation-harness's ``doc_to_text`` does. Templates run in
Jinja's immutable sandbox (a targets file cannot reach Python's internals or
change the record) with strict undefined values, so a field missing from a
record is an error naming the record and the field, never an empty string.

Ready templates for the benchmarks of the paper are in :data:`READY`,
written for the fields of their Hugging Face Parquet exports: the question
(or context) followed by its correct answer, the text a model trained on the
selection should find likely.
"""
from __future__ import annotations

from functools import cached_property

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import InputError

READY: dict[str, str] = {
    # allenai/ai2_arc, ARC-Challenge: question, choices {text, label}, answerKey
    "arc-challenge": "Question: {{ question }}\nAnswer: {{ choices.text[choices.label.index(answerKey)] }}",
    # Rowan/hellaswag: activity_label, ctx, endings, label (a string; empty in the test split)
    "hellaswag": "{{ activity_label }}: {{ ctx }}{% if label %} {{ endings[label | int] }}{% endif %}",
    # cais/mmlu: question, subject, choices, answer (0-3)
    "mmlu": "{{ question | trim }}\nA. {{ choices[0] }}\nB. {{ choices[1] }}\nC. {{ choices[2] }}\n"
            "D. {{ choices[3] }}\nAnswer: {{ 'ABCD'[answer] }}. {{ choices[answer] }}",
    # mandarjoshi/trivia_qa (rc.nocontext, unfiltered.nocontext): question, answer {value, aliases, ...}
    "triviaqa": "Question: {{ question }}\nAnswer: {{ answer.value }}",
    # juletxara/xstory_cloze: input_sentence_1..4, sentence_quiz1, sentence_quiz2, answer_right_ending (1 or 2)
    "xstorycloze": "{{ [input_sentence_1, input_sentence_2, input_sentence_3, input_sentence_4] | join(' ') }} "
                   "{{ [sentence_quiz1, sentence_quiz2][answer_right_ending - 1] }}",
    # Muennighoff/xwinograd: sentence (with a _ blank), option1, option2, answer ("1" or "2")
    "xwinograd": "{{ sentence.replace('_', option1 if answer | string == '1' else option2) }}",
}

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


class Template:
    """A compiled template: a ready one named in :data:`READY`, or Jinja2 text over a record's fields."""

    def __init__(self, spec: str):
        self.source = READY.get(spec, spec)
        try:
            self._template = _ENV.from_string(self.source)
        except jinja2.TemplateSyntaxError as err:
            raise InputError(f"--template: line {err.lineno}: {err.message}") from None

    @cached_property
    def fields(self) -> frozenset[str]:
        """The top-level names the template reads: the columns a Parquet or Arrow reader must load."""
        return frozenset(meta.find_undeclared_variables(_ENV.parse(self.source)))

    def render(self, record: dict) -> str:
        """The text of ``record``; a missing field or a failing expression raises InputError saying which."""
        try:
            return self._template.render(record)
        except jinja2.UndefinedError as err:
            fields = ", ".join(map(repr, record)) or "none"
            raise InputError(f"the template needs a field the record lacks: {err.message} (fields: {fields})") from None
        except jinja2.TemplateError as err:
            raise InputError(f"the template fails on this record: {err.message or err}") from None
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as err:
            raise InputError(f"the template fails on this record: {type(err).__name__}: {err}") from None

    def __reduce__(self):
        # Compiled Jinja code does not pickle; the source does (Ray ships the reader to a worker).
        return Template, (self.source,)

    def __eq__(self, other) -> bool:
        return isinstance(other, Template) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

