"""Texts made by templates: ready ones for the paper's benchmarks, the user's own, and their errors."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import query, rows, run
from nagindex.errors import InputError
from nagindex.template import READY, Template
from query import read_targets

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


# --- targets read through a template, end to end ---------------------------------


def write_export(path, records: list[dict]) -> None:
    """Records as a Hugging Face Parquet export holds them (or JSON lines, for a .jsonl path)."""
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_query_selects_for_a_benchmarks_export_with_its_ready_template(demo_index, tmp_path, name):
    path = tmp_path / f"{name}.parquet"
    write_export(path, [RECORDS[name]] * 3)
    assert read_targets(path, template=Template(name)).texts == [EXPECTED[name]] * 3
    out = rows(query(demo_index, path, "--template", name, "-k", "4").output)
    # The task is named after the file, as for any targets without a target field.
    assert len(out) == 4 and {r["target"] for r in out} == {name}
    refused = query(demo_index, path, "-k", "4", ok=False)
    assert refused.exit_code != 0 and "no 'text' column" in refused.output


def test_a_users_template_and_target_names_in_a_jsonl_file(demo_index, tmp_path):
    path = tmp_path / "mixed.jsonl"
    write_export(path, [{**RECORDS["arc-challenge"], "target": "arc"}, {**RECORDS["mmlu"], "target": "mmlu"}])
    out = rows(query(demo_index, path, "--template", "{{ question }}", "-k", "4").output)
    assert {r["target"] for r in out} == {"arc", "mmlu"}
    query(demo_index, path, "--template", "{{ question }}", "-k", "4", "-o", f"{tmp_path}/selected/")
    card = json.loads((tmp_path / "selected" / ".nagindex-selection.json").read_text())
    assert card["query"]["target_text"] == {"template": "{{ question }}"}
    assert read_targets(path, template="{{ question }}").texts == [
        RECORDS["arc-challenge"]["question"], RECORDS["mmlu"]["question"]]


def test_a_target_missing_a_field_is_named_with_its_file_and_line(demo_index, tmp_path):
    path = tmp_path / "mmlu.jsonl"
    write_export(path, [RECORDS["mmlu"], {"prompt": "What is 2 + 2?", "choices": ["4"], "answer": 0}])
    result = query(demo_index, path, "--template", "mmlu", "-k", "2", ok=False)
    assert result.exit_code != 0
    assert "mmlu.jsonl, line 2: the template needs a field the record lacks: 'question' is undefined " \
           "(fields: 'prompt', 'choices', 'answer')" in result.output


def test_a_parquet_export_without_a_templates_column_names_the_columns_it_has(demo_index, tmp_path):
    path = tmp_path / "trivia.parquet"
    write_export(path, [RECORDS["triviaqa"]])
    result = query(demo_index, path, "--template", "mmlu", "-k", "2", ok=False)
    assert "trivia.parquet, row 0: the template needs a field the record lacks: 'choices' is undefined " \
           "(fields: 'question', 'question_id', 'question_source', 'answer')" in result.output


@pytest.mark.parametrize("command, needs", [("query", ["-k", "1"]), ("profile", ["-o", "p.npz"]), ("explain", []),
                                            ("ablate", []), ("proxy", [])])
def test_every_command_reading_targets_takes_a_template_instead_of_a_text_field(demo_index, tmp_path, command, needs):
    path = tmp_path / "mmlu.jsonl"
    write_export(path, [{"question": "What is 2 + 3?"}])
    args = (command, path, "-i", demo_index, *needs)
    result = run(*args, "--template", "mmlu", "--text-field", "text", ok=False)
    assert result.exit_code != 0 and "--text-field and --template" in result.output
    result = run(*args, "--template", "mmlu", ok=False)
    assert "mmlu.jsonl, line 1: the template needs a field the record lacks: 'choices' is undefined" in result.output
    result = run(*args, "--template", "{{ question", ok=False)
    assert result.exit_code != 0 and "--template: line 1" in result.output


def test_profiles_and_explanations_of_templated_targets(demo_index, tmp_path):
    path = tmp_path / "arc.parquet"
    write_export(path, [RECORDS["arc-challenge"]] * 2)
    run("profile", path, "-i", demo_index, "--template", "arc-challenge", "-o", tmp_path / "p.npz")
    assert "arc" in run("explain", path, "-i", demo_index, "--template", "arc-challenge", "--documents", "1").output
