"""Texts made by templates: ready ones for the paper's benchmarks, the user's own, and their errors."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nagindex.errors import InputError
from nagindex.template import READY, Template

# Small records of the shape of each benchmark's Hugging Face Parquet export, written here.
RECORDS = {
    "arc-challenge": {"id": "q1", "question": "Which gas do plants take in?", "answerKey": "B",
                      "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"],
                                  "label": ["A", "B", "C", "D"]}},
    "hellaswag": {"ind": 4, "activity_label": "Baking cookies", "ctx_a": "A woman mixes dough.",
                  "ctx_b": "she", "ctx": "A woman mixes dough. she", "source_id": "x", "split": "val",
                  "split_type": "indomain", "label": "2",
                  "endings": ["sings.", "flies away.", "puts the tray in the oven.", "reads."]},
    "mmlu": {"question": " What is 2 + 3? ", "subject": "elementary_mathematics",
             "choices": ["4", "5", "6", "7"], "answer": 1},
    "triviaqa": {"question": "Which planet is known as the red planet?", "question_id": "tc_1",
                 "question_source": "http://example.org",
                 "answer": {"aliases": ["Mars", "Red planet"], "normalized_aliases": ["mars", "red planet"],
                            "matched_wiki_entity_name": "", "normalized_matched_wiki_entity_name": "",
                            "normalized_value": "mars", "type": "WikipediaEntity", "value": "Mars"}},
    "xstorycloze": {"story_id": "s1", "input_sentence_1": "Tom was hungry.", "input_sentence_2": "He opened the fridge.",
                    "input_sentence_3": "It was empty.", "input_sentence_4": "He went to the store.",
                    "sentence_quiz1": "He bought bread.", "sentence_quiz2": "He went to sleep hungry forever.",
                    "answer_right_ending": 1},
    "xwinograd": {"sentence": "The trophy did not fit in the suitcase because the _ was too big.",
                  "option1": "trophy", "option2": "suitcase", "answer": "1"},
}
EXPECTED = {
    "arc-challenge": "Question: Which gas do plants take in?\nAnswer: carbon dioxide",
    "hellaswag": "Baking cookies: A woman mixes dough. she puts the tray in the oven.",
    "mmlu": "What is 2 + 3?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer: B. 5",
    "triviaqa": "Question: Which planet is known as the red planet?\nAnswer: Mars",
    "xstorycloze": "Tom was hungry. He opened the fridge. It was empty. He went to the store. He bought bread.",
    "xwinograd": "The trophy did not fit in the suitcase because the trophy was too big.",
}


def test_every_benchmark_of_the_paper_has_a_ready_template():
    assert sorted(READY) == sorted(RECORDS)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_ready_templates_render_parquet_records_of_their_benchmark(tmp_path, name):
    path = tmp_path / f"{name}.parquet"
    pq.write_table(pa.Table.from_pylist([RECORDS[name]]), path)
    (record,) = pq.read_table(path).to_pylist()
    assert Template(name).render(record) == EXPECTED[name]


def test_hellaswag_test_records_without_a_label_give_the_context_alone():
    record = {**RECORDS["hellaswag"], "label": ""}
    assert Template("hellaswag").render(record) == "Baking cookies: A woman mixes dough. she"


def test_a_users_template_joins_list_fields():
    template = Template('{{question}} {{choices.text|join(" ")}}')
    assert template.render(RECORDS["arc-challenge"]) == "Which gas do plants take in? oxygen carbon dioxide helium neon"
    assert template.fields == {"question", "choices"}


def test_a_missing_field_is_named_with_the_fields_the_record_has():
    with pytest.raises(InputError, match=r"'question' is undefined \(fields: 'questoin'\)"):
        Template("{{question}}").render({"questoin": "b?"})


def test_a_template_with_a_syntax_error_is_refused():
    with pytest.raises(InputError, match="--template: line 1"):
        Template("{{question")


def test_templates_run_in_a_sandbox():
    with pytest.raises(InputError, match="template fails"):
        Template("{{ choices.append('x') }}").render({"choices": []})
    with pytest.raises(InputError, match="template fails"):
        Template("{{ ().__class__.__base__.__subclasses__() }}").render({})


def test_templates_pickle_as_their_source():
    import pickle

    template = pickle.loads(pickle.dumps(Template("mmlu")))
    assert template == Template("mmlu") and template.render(RECORDS["mmlu"]) == EXPECTED["mmlu"]
