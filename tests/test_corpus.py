import gzip
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from nagindex import corpus
from nagindex.corpus import Skipped, fetch_text, fetch_texts, find_files, read_records
from nagindex.corpus.parquet import ParquetReader
from nagindex.errors import InputError

JSONL_KINDS = [".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst"]
KINDS = [*JSONL_KINDS, ".parquet", ".arrow"]

DOCS = [
    {"id": "a", "text": "The first document.", "lang": "en"},
    {"id": "b", "text": "Zweites Dokument: äöü ß, 日本語.", "lang": "de"},
    {"id": "c", "text": "Third\nwith a newline and \"quotes\"."},
]


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` compressed as ``path``'s suffix says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def write_lines(path: Path, lines: list[bytes | str]) -> Path:
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    return write_bytes(path, b"".join(line + b"\n" for line in raw))


def write_docs(path: Path, docs: list[dict], row_group_size: int | None = None) -> Path:
    if path.name.endswith(".parquet"):
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(docs), path, row_group_size=row_group_size)
        return path
    if path.name.endswith(".arrow"):     # an Arrow IPC stream, as `datasets` writes, in batches of 2 rows
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(docs)
        with pa.ipc.new_stream(path, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=2):
                writer.write_batch(batch)
        return path
    return write_lines(path, [json.dumps(d, ensure_ascii=False) for d in docs])


def decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
    return data


def read_all(files, **kwargs):
    return list(read_records([Path(f) for f in files], **kwargs))


def error_of(files, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        read_all(files, **kwargs)
    return str(info.value)


# --- find_files ---------------------------------------------------------------


def test_find_files_searches_directories_recursively(tmp_path):
    wanted = [
        write_lines(tmp_path / "a.jsonl", []),
        write_lines(tmp_path / "sub" / "b.jsonl.gz", []),
        write_lines(tmp_path / "sub" / "deeper" / "c.jsonl.zst", []),
        write_docs(tmp_path / "sub" / "d.parquet", DOCS),
        write_bytes(tmp_path / "e.txt", b"text"),
    ]
    write_bytes(tmp_path / "notes.md", b"not a corpus file")
    write_lines(tmp_path / ".hidden.jsonl", [])
    write_lines(tmp_path / ".cache" / "x.jsonl", [])

    assert find_files(tmp_path) == sorted(wanted)
    assert find_files(str(tmp_path)) == sorted(wanted)
    assert all(p.is_absolute() for p in find_files(tmp_path))


def test_find_files_expands_globs_and_merges_several_specs(tmp_path):
    a = write_lines(tmp_path / "a.jsonl", [])
    b = write_lines(tmp_path / "sub" / "b.jsonl", [])
    t = write_bytes(tmp_path / "sub" / "t.txt", b"x")
    write_bytes(tmp_path / "sub" / "readme.md", b"x")

    assert find_files(str(tmp_path / "*.jsonl")) == [a]
    assert find_files(str(tmp_path / "**" / "*.jsonl")) == sorted([a, b])
    assert find_files(str(tmp_path / "s*")) == sorted([b, t])
    assert find_files([tmp_path, a, str(tmp_path / "sub" / "*")]) == sorted([a, b, t])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing", "no such file or directory"),
        ("notes.md", "unsupported file type"),
        ("empty", "files found"),
        ("*.parquet", "files found"),
    ],
)
def test_find_files_reports_the_spec_that_found_nothing(tmp_path, spec, message):
    write_bytes(tmp_path / "notes.md", b"x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=message) as info:
        find_files(str(tmp_path / spec))
    assert spec in str(info.value)


# --- round trips ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(tmp_path, kind):
    path = write_docs(tmp_path / f"docs{kind}", DOCS)
    records = read_all([path], extra_fields=("lang",))

    assert [r.id for r in records] == ["a", "b", "c"]
    assert [r.text for r in records] == [d["text"] for d in DOCS]
    assert [r.file_index for r in records] == [0, 0, 0]
    assert records[0].fields == {"lang": "en"}
    if kind in (".parquet", ".arrow"):
        assert [r.offset for r in records] == [0, 1, 2]
        assert records[2].fields == {"lang": None}
        assert records[1].where.endswith(f"docs{kind}, row 1")
    else:
        assert records[2].fields == {}
        assert records[1].where.endswith(f"docs{kind}, line 2")
        stream = decompressed(path)
        for r in records:
            line = stream[r.offset:].split(b"\n", 1)[0]
            assert json.loads(line)["text"] == r.text

    for r in records:
        assert fetch_text(path, r.offset) == r.text


def test_txt_is_one_document_named_by_its_path(tmp_path):
    root = tmp_path / "corpus"
    path = write_bytes(root / "sub" / "note.txt", "A whole file.\nTwo lines: ü.\n".encode())
    (record,) = read_all([path], root=root)
    assert (record.id, record.offset, record.fields) == ("sub/note.txt", 0, {})
    assert record.text == "A whole file.\nTwo lines: ü.\n"
    assert fetch_text(path, 0) == record.text
    assert read_all([path])[0].id == "note.txt"


def test_fetch_texts_returns_texts_in_the_order_asked(tmp_path):
    files = [
        write_docs(tmp_path / "a.jsonl", [{"text": f"plain {i}"} for i in range(20)]),
        write_docs(tmp_path / "b.jsonl.gz", [{"text": f"gzip {i}"} for i in range(20)]),
        write_docs(tmp_path / "c.jsonl.zst", [{"text": f"zstd {i}"} for i in range(20)]),
        write_docs(tmp_path / "d.parquet", [{"text": f"parquet {i}"} for i in range(20)], row_group_size=6),
        write_bytes(tmp_path / "e.txt", b"the text file"),
        write_docs(tmp_path / "f.arrow", [{"text": f"arrow {i}"} for i in range(20)]),
        write_docs(tmp_path / "g.json.gz", [{"text": f"json {i}"} for i in range(20)]),
    ]
    records = read_all(files)
    picked = random.Random(0).choices(records, k=60)  # shuffled, with repeats

    texts = fetch_texts(
        files,
        np.array([r.file_index for r in picked], dtype=np.uint32),
        np.array([r.offset for r in picked], dtype=np.int64),
    )
    assert texts == [r.text for r in picked]
    assert fetch_texts(files, np.array([], dtype=np.uint32), np.array([], dtype=np.int64)) == []


@pytest.mark.parametrize("kind", [".jsonl", ".parquet"])
def test_integer_ids_become_strings(tmp_path, kind):
    path = write_docs(tmp_path / f"a{kind}", [{"id": 7, "text": "x"}, {"id": 12, "text": "y"}])
    assert [r.id for r in read_all([path])] == ["7", "12"]


def test_custom_field_names(tmp_path):
    path = write_docs(tmp_path / "a.jsonl", [{"doc": "x1", "content": "hello"}])
    (record,) = read_all([path], text_field="content", id_field="doc")
    assert (record.id, record.text) == ("x1", "hello")
    assert fetch_text(path, record.offset, text_field="content") == "hello"


def test_default_ids_come_from_the_path_and_line_or_row(tmp_path):
    root = tmp_path / "corpus"
    jsonl = write_lines(root / "sub" / "a.jsonl", ['{"text": "one"}', "", '{"text": "three"}'])
    parquet = write_docs(root / "b.parquet", [{"text": "zero"}, {"text": "one"}])

    records = read_all([jsonl, parquet], root=root)
    assert [r.id for r in records] == ["sub/a.jsonl:1", "sub/a.jsonl:3", "b.parquet:0", "b.parquet:1"]
    assert [r.file_index for r in records] == [0, 0, 1, 1]
    assert read_all([jsonl])[0].id == "a.jsonl:1"


def test_blank_lines_are_ignored(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", ["", '{"id": 1, "text": "x"}', "   ", "\t\r", '{"id": 2, "text": "y"}', ""])
    records = read_all([path])
    assert [(r.id, r.where.rsplit(" ", 1)[1]) for r in records] == [("1", "2"), ("2", "5")]
    assert [fetch_text(path, r.offset) for r in records] == ["x", "y"]


def test_zstd_files_with_several_frames_are_read_whole(tmp_path):
    path = tmp_path / "a.jsonl.zst"
    frames = [zstandard.ZstdCompressor().compress(f'{{"text": "doc {i}"}}\n'.encode()) for i in range(3)]
    path.write_bytes(b"".join(frames))
    records = read_all([path])
    assert [r.text for r in records] == ["doc 0", "doc 1", "doc 2"]
    assert fetch_text(path, records[2].offset) == "doc 2"


def test_parquet_is_read_in_batches(tmp_path, monkeypatch):
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(10)]
    path = write_docs(tmp_path / "a.parquet", docs, row_group_size=3)
    assert pq.ParquetFile(path).num_row_groups == 4

    batches = []
    iter_batches = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in iter_batches(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    def whole_file(*args, **kwargs):
        raise AssertionError("the whole file was read at once")

    monkeypatch.setattr(ParquetReader, "batch_rows", 2)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    monkeypatch.setattr(pq.ParquetFile, "read", whole_file)
    monkeypatch.setattr(pq, "read_table", whole_file)

    records = read_all([path])
    assert [r.id for r in records] == [d["id"] for d in docs]
    assert [r.offset for r in records] == list(range(10))
    assert max(batches) <= 2 and sum(batches) == 10


def test_fetching_a_parquet_row_reads_only_its_row_group(tmp_path, monkeypatch):
    path = write_docs(tmp_path / "a.parquet", [{"text": f"document {i}"} for i in range(10)], row_group_size=3)
    groups = []
    read_row_group = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        groups.append(i)
        return read_row_group(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    assert fetch_text(path, 7) == "document 7"
    assert groups == [2]
    assert fetch_texts([path], np.zeros(3, np.uint32), np.array([8, 1, 7])) == [
        "document 8", "document 1", "document 7"]
    assert groups == [2, 0, 2]


# --- bad input ------------------------------------------------------------------


@pytest.mark.parametrize("kind", JSONL_KINDS)
@pytest.mark.parametrize(
    "line, reason",
    [
        (b'{"text": "unterminated', "not valid JSON (invalid control character at column 23)"),
        (b'{"text": "x"} tail', "not valid JSON (extra data at column 15)"),
        (b'["text", "an array"]', "expected a JSON object, found an array"),
        (b'"just a string"', "expected a JSON object, found a string"),
        (b'{"id": "x", "body": "wrong field"}', "no 'text' field (fields: 'id', 'body')"),
        (b'{"text": 42}', "'text' is a number, not a string"),
        (b'{"text": null}', "'text' is null, not a string"),
        (b'{"text": ""}', "'text' is empty"),
        (b'{"text": " \\n\\t "}', "'text' is empty or only whitespace"),
        (b'{"text": "caf\xe9"}', "invalid UTF-8 at byte 13"),
        (b'{"text": "lone \\ud800 surrogate"}', "unpaired surrogate \\ud800"),
        (b'{"id": 1.5, "text": "x"}', "'id' is a number; ids are strings or integers"),
        (b'{"id": true, "text": "x"}', "'id' is a boolean"),
        (b'{"id": "", "text": "x"}', "'id' is empty"),
    ],
)
def test_bad_jsonl_records_are_reported_with_file_and_line(tmp_path, kind, line, reason):
    path = write_lines(tmp_path / f"bad{kind}", [b'{"text": "good"}', b"", line, b'{"text": "after"}'])
    message = error_of([path])
    assert f"bad{kind}, line 3: " in message
    assert reason in message


@pytest.mark.parametrize(
    "docs, where, reason",
    [
        ([{"text": "a"}, {"text": "b"}, {"text": None}, {"text": "d"}], "row 2", "'text' is null"),
        ([{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": " "}], "row 3", "'text' is empty"),
        ([{"id": 1, "text": "a"}, {"id": 2, "text": "b"}, {"id": 1, "text": "c"}], "row 2", "duplicate id '1'"),
    ],
)
def test_bad_parquet_rows_are_reported_with_file_and_row(tmp_path, docs, where, reason):
    path = write_docs(tmp_path / "bad.parquet", docs, row_group_size=2)
    message = error_of([path])
    assert f"bad.parquet, {where}: " in message
    assert reason in message


def test_parquet_without_the_text_column_names_its_columns(tmp_path):
    path = write_docs(tmp_path / "bad.parquet", [{"id": "a", "body": "x"}])
    message = error_of([path])
    assert "bad.parquet" in message
    assert "no 'text' column (columns: id, body)" in message


def test_invalid_utf8_in_a_text_file_names_the_line(tmp_path):
    path = write_bytes(tmp_path / "bad.txt", b"fine\nstill fine\nbroken \xff here\n")
    assert "bad.txt, line 3: invalid UTF-8" in error_of([path])


def test_empty_text_file_is_reported(tmp_path):
    path = write_bytes(tmp_path / "empty.txt", b" \n")
    assert "empty.txt: 'text' is empty" in error_of([path])


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _many_lines() -> bytes:
    rng = random.Random(0)
    return b"".join(
        json.dumps({"text": " ".join(str(rng.random()) for _ in range(20))}).encode() + b"\n"
        for _ in range(2000)
    )


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("missing.jsonl", None, "No such file or directory"),
        ("missing.parquet", None, "No such file or directory"),
        ("missing.txt", None, "No such file or directory"),
        ("garbage.jsonl.gz", b"this is not gzip", "Not a gzipped file"),
        ("cut.jsonl.gz", _truncated(gzip.compress(_many_lines())), "cannot read the file"),
        ("garbage.jsonl.zst", b"this is not zstd", "cannot read the file"),
        ("cut.jsonl.zst", _truncated(zstandard.ZstdCompressor().compress(_many_lines())), "truncated"),
        ("garbage.parquet", b"this is not parquet", "cannot read the file"),
    ],
)
def test_unreadable_files_are_reported(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    message = error_of([path])
    assert name in message
    assert reason in message
    if name.startswith("cut."):
        assert ", line " in message  # the records before the damage were read


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_a_forbidden_file_is_reported(tmp_path):
    path = write_docs(tmp_path / "secret.jsonl", DOCS)
    path.chmod(0)
    assert "secret.jsonl: cannot read the file: Permission denied" in error_of([path])


def test_duplicate_ids_across_files_name_both_places(tmp_path):
    a = write_docs(tmp_path / "a.jsonl", [{"id": "x", "text": "one"}])
    b = write_docs(tmp_path / "b.jsonl.gz", [{"id": "y", "text": "two"}, {"id": "x", "text": "three"}])
    message = error_of([a, b])
    assert "b.jsonl.gz, line 2: duplicate id 'x'" in message
    assert "first seen at" in message and "a.jsonl, line 1" in message


def test_seen_ids_keep_ids_unique_across_calls(tmp_path):
    a = write_docs(tmp_path / "a.jsonl", [{"id": "x", "text": "one"}])
    b = write_docs(tmp_path / "b.parquet", [{"id": "x", "text": "two"}])
    seen: dict[str, str] = {}
    read_all([a], seen_ids=seen)
    assert seen["x"].endswith("a.jsonl, line 1")
    message = error_of([b], seen_ids=seen)
    assert "b.parquet, row 0: duplicate id 'x'" in message and "a.jsonl, line 1" in message


def test_skip_mode_records_what_was_skipped_and_goes_on(tmp_path):
    a = write_lines(tmp_path / "a.jsonl", [
        '{"id": "1", "text": "kept"}',
        "not json",
        '{"id": "1", "text": "duplicate"}',
        '{"id": "3"}',
        '{"id": "4", "text": "also kept"}',
    ])
    broken = tmp_path / "b.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    c = write_docs(tmp_path / "c.parquet", [{"text": "last"}])

    skipped: list[Skipped] = []
    records = read_all([a, broken, c], on_error="skip", skipped=skipped)

    assert [r.text for r in records] == ["kept", "also kept", "last"]
    assert [r.file_index for r in records] == [0, 0, 2]
    assert [s.where.rsplit("/", 1)[-1] for s in skipped] == [
        "a.jsonl, line 2", "a.jsonl, line 3", "a.jsonl, line 4", "b.jsonl.gz"]
    assert "not valid JSON" in skipped[0].reason
    assert "duplicate id '1'" in skipped[1].reason
    assert "no 'text' field" in skipped[2].reason
    assert "cannot read the file" in skipped[3].reason


def test_skip_mode_keeps_the_records_before_a_truncation(tmp_path):
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(_truncated(zstandard.ZstdCompressor().compress(_many_lines())))
    skipped: list[Skipped] = []
    records = read_all([path], on_error="skip", skipped=skipped)
    assert records
    (entry,) = skipped
    assert entry.where.endswith(f"cut.jsonl.zst, line {len(records) + 1}")


def test_on_error_must_be_raise_or_skip(tmp_path):
    with pytest.raises(ValueError):
        read_all([write_docs(tmp_path / "a.jsonl", DOCS)], on_error="ignore")


# --- fetching from a file that changed -----------------------------------------


def test_fetch_reports_a_position_with_no_record(tmp_path):
    jsonl = write_docs(tmp_path / "a.jsonl.gz", DOCS)
    parquet = write_docs(tmp_path / "b.parquet", DOCS)
    with pytest.raises(InputError, match=r"a\.jsonl\.gz, byte 5: .*changed since it was indexed"):
        fetch_text(jsonl, 5)
    with pytest.raises(InputError, match=r"a\.jsonl\.gz, byte 100000: "):
        fetch_text(jsonl, 100000)
    with pytest.raises(InputError, match=r"b\.parquet, row 3: no such row"):
        fetch_text(parquet, 3)
    with pytest.raises(InputError, match=r"missing\.jsonl: cannot read the file"):
        fetch_text(tmp_path / "missing.jsonl", 0)


# --- files cut short, links that lead nowhere -------------------------------------


@pytest.mark.parametrize("name, compress", [
    ("cut.jsonl.gz", gzip.compress),
    ("cut.jsonl.zst", zstandard.ZstdCompressor().compress),
])
def test_skip_mode_says_where_a_cut_file_ends_and_that_the_rest_is_missing(tmp_path, name, compress):
    path = tmp_path / name
    data = _many_lines()
    path.write_bytes(_truncated(compress(data)))
    skipped: list[Skipped] = []
    records = read_all([path], on_error="skip", skipped=skipped)
    (entry,) = skipped
    assert entry.rest_of_file
    ends = sum(len(line) + 1 for line in data.split(b"\n")[: len(records)])
    assert f"after line {len(records)} (byte {ends:,} of its decompressed content)" in entry.reason
    assert "the rest of the file is missing" in entry.reason


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
@pytest.mark.parametrize("target, problem", [
    ("nowhere.jsonl", "a dangling symbolic link (to nowhere.jsonl, which does not exist)"),
    ("link.jsonl", "a symbolic link that loops back on itself"),
])
def test_a_link_that_leads_nowhere_is_named(tmp_path, target, problem):
    good = write_docs(tmp_path / "c" / "a.jsonl", DOCS)
    (tmp_path / "c" / "link.jsonl").symlink_to(target)
    for spec in (tmp_path / "c", tmp_path / "c" / "link.jsonl", str(tmp_path / "c" / "*.jsonl")):
        with pytest.raises(InputError, match=re.escape(f"link.jsonl: {problem}")):
            find_files(spec)
    skipped: list[Skipped] = []
    assert find_files(tmp_path / "c", on_error="skip", skipped=skipped) == [good]
    assert [(s.where.endswith("link.jsonl"), s.reason, s.rest_of_file) for s in skipped] == [(True, problem, True)]


# --- records too large to read --------------------------------------------------


@pytest.mark.parametrize("kind", JSONL_KINDS)
def test_a_record_over_the_size_limit_is_a_bad_record_read_no_further(tmp_path, kind):
    big = {"id": "big", "text": "word " * 400}
    path = write_docs(tmp_path / f"a{kind}", [DOCS[0], big, DOCS[1]])
    message = error_of([path], max_record_size=1000)
    assert f"a{kind}, line 2: the record is {len(json.dumps(big)) + 1:,} bytes, over the limit of 1,000" in message
    skipped: list[Skipped] = []
    records = read_all([path], on_error="skip", skipped=skipped, max_record_size=1000)
    assert [r.id for r in records] == ["a", "b"] and len(skipped) == 1
    assert fetch_text(path, records[1].offset) == DOCS[1]["text"]


def test_text_files_and_parquet_texts_over_the_size_limit_are_bad_records(tmp_path):
    txt = write_bytes(tmp_path / "long.txt", b"word " * 400)
    parquet = write_docs(tmp_path / "p.parquet", [DOCS[0], {"id": "big", "text": "word " * 400}])
    assert "long.txt: the record is 2,000 bytes, over the limit of 1,000" in error_of([txt], max_record_size=1000)
    assert "p.parquet, row 1: the record is 2,000 bytes" in error_of([parquet], max_record_size=1000)


def test_a_line_fetched_back_is_read_no_further_than_the_record_size_limit(tmp_path):
    path = write_docs(tmp_path / "a.jsonl.zst", [DOCS[0], {"id": "big", "text": "word " * 400}])
    records = read_all([path])
    indexed = corpus.Indexed(["big"], None, max_record_size=1000)
    with pytest.raises(InputError, match=rf"a\.jsonl\.zst, byte {records[1].offset}: the line here is over 1,000 "
                                         r"bytes, the most a record of this index may be \(--max-record-size\)"):
        fetch_texts([path], np.zeros(1, np.uint32), np.array([records[1].offset]), indexed=indexed)


def test_a_zstd_file_cut_inside_a_frame_is_reported_however_it_is_sliced(tmp_path):
    lines = [json.dumps({"id": str(i), "text": "word " * 300}) for i in range(200)]
    path = write_lines(tmp_path / "a.jsonl.zst", lines)
    path.write_bytes(path.read_bytes()[:-7])
    skipped: list[Skipped] = []
    records = read_all([path], on_error="skip", skipped=skipped)
    assert 0 < len(records) < 200
    assert "the file ends inside a frame" in skipped[-1].reason and skipped[-1].rest_of_file


# --- `datasets` folders and splits ------------------------------------------------


def save_dataset(path: Path, docs: list[dict], shards: int = 1) -> Path:
    import datasets

    datasets.Dataset.from_list(docs).save_to_disk(str(path), num_shards=shards)
    return path


def test_a_datasets_folder_gives_its_data_files_in_order_not_its_metadata_nor_caches(tmp_path):
    docs = [{"id": f"d{i}", "text": f"document {i}", "score": i / 10} for i in range(10)]
    folder = save_dataset(tmp_path / "ds", docs, shards=3)
    write_docs(folder / "cache-0123456789abcdef.arrow", [{"text": "a cached map() result"}])

    files = find_files(folder)
    assert [f.name for f in files] == [f"data-0000{i}-of-00003.arrow" for i in range(3)]
    records = read_all(files, extra_fields=("score",))
    assert [(r.id, r.text, r.fields) for r in records] == [(d["id"], d["text"], {"score": d["score"]}) for d in docs]
    for i in range(3):      # offsets are row numbers within each file
        offsets = [r.offset for r in records if r.file_index == i]
        assert offsets == list(range(len(offsets))) and offsets
    picked = records[::-1]
    assert fetch_texts(files, np.array([r.file_index for r in picked]), np.array([r.offset for r in picked])) \
        == [r.text for r in picked]


def test_a_datasets_state_naming_a_missing_file_is_reported(tmp_path):
    folder = save_dataset(tmp_path / "ds", [{"text": "one"}])
    (folder / "data-00000-of-00001.arrow").unlink()
    with pytest.raises(InputError, match=r"state\.json: lists the data file 'data-00000-of-00001\.arrow', "
                                         r"which is not in the folder"):
        find_files(folder)


def test_a_row_past_the_end_of_an_arrow_file_is_reported(tmp_path):
    path = write_docs(tmp_path / "a.arrow", DOCS)
    with pytest.raises(InputError, match=r"a\.arrow, row 3: no such row \(the file has 3\)"):
        fetch_text(path, 3)


@pytest.mark.parametrize("layout, splits", [
    ({"data/train-00000-of-00002.parquet": 2, "data/train-00001-of-00002.parquet": 2,
      "data/test-00000-of-00001.parquet": 1}, {"train": 4, "test": 1}),
    ({"train/a.jsonl": 2, "train/b.jsonl.gz": 1, "validation/a.jsonl": 3}, {"train": 3, "validation": 3}),
    ({"train.parquet": 2, "dev.jsonl": 1, "test.json": 2}, {"train": 2, "dev": 1, "test": 2}),
])
def test_a_corpus_of_several_splits_must_be_told_which_to_read(tmp_path, layout, splits):
    for rel, n in layout.items():
        write_docs(tmp_path / "hub" / rel, [{"text": f"{rel} {i}"} for i in range(n)])
    files = find_files(tmp_path / "hub")
    with pytest.raises(InputError, match=rf"the corpus holds several splits \({', '.join(sorted(splits))}\): "
                                         r"choose one with --split NAME"):
        corpus.choose_split(files, None)
    for split, n in splits.items():
        assert len(read_all(corpus.choose_split(files, split))) == n
    with pytest.raises(InputError, match=rf"--split nope: no such split in the corpus \(splits found: "
                                         rf"{', '.join(sorted(splits))}\)"):
        corpus.choose_split(files, "nope")


def test_a_corpus_of_one_split_or_none_is_read_whole(tmp_path):
    for name in ("web", "books", "devices", "testimonials"):
        write_docs(tmp_path / "plain" / f"{name}.jsonl", DOCS)
    plain = find_files(tmp_path / "plain")
    assert corpus.choose_split(plain, None) == plain
    one = [write_docs(tmp_path / "one" / f"train-0000{i}-of-00002.parquet", DOCS) for i in range(2)]
    assert corpus.choose_split(find_files(tmp_path / "one"), None) == one
    assert corpus.choose_split(one, "train") == one


def test_a_saved_dataset_dict_has_one_split_per_folder(tmp_path):
    import datasets

    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"text": f"train {i}"} for i in range(4)]),
        "holdout": datasets.Dataset.from_list([{"text": f"holdout {i}"} for i in range(2)]),
    }).save_to_disk(str(tmp_path / "dd"))
    files = find_files(tmp_path / "dd")
    assert [f.relative_to(tmp_path / "dd").as_posix() for f in files] == \
        ["holdout/data-00000-of-00001.arrow", "train/data-00000-of-00001.arrow"]
    with pytest.raises(InputError, match=r"several splits \(holdout, train\)"):
        corpus.choose_split(files, None)
    assert [r.text for r in read_all(corpus.choose_split(files, "holdout"))] == ["holdout 0", "holdout 1"]


def test_a_corpus_moved_between_disks_and_buckets_is_found_where_it_is_now():
    moves = [("s3://old-bucket/pool", "s3://new-bucket/p"), ("/data/pool", "gs://archive/pool")]
    assert corpus.reroot("s3://old-bucket/pool/a/b.jsonl", moves) == "s3://new-bucket/p/a/b.jsonl"
    assert corpus.reroot("/data/pool/b.parquet", moves) == "gs://archive/pool/b.parquet"
    assert corpus.reroot("/data/pooled/b.parquet", moves) == Path("/data/pooled/b.parquet")
    assert corpus.reroot("s3://old-bucket/pooled/b.jsonl", moves) == "s3://old-bucket/pooled/b.jsonl"
    assert corpus.reroot("/data/pool/b.jsonl", [("/data", "/mnt/d")]) == Path("/mnt/d/pool/b.jsonl")


def test_a_template_renders_records_of_a_datasets_folder_and_their_fetch_back(tmp_path):
    from nagindex.template import Template

    docs = [{"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1), "unused": "x" * 50}
            for i in range(5)]
    files = find_files(save_dataset(tmp_path / "ds", docs, shards=2))
    template = Template("{{question}} {{answer}}")
    records = read_all(files, template=template)
    assert [r.text for r in records] == [f"What is {i} + 1? {i + 1}" for i in range(5)]
    assert fetch_texts(files, np.array([r.file_index for r in records]), np.array([r.offset for r in records]),
                       template=template) == [r.text for r in records]
    with pytest.raises(InputError, match=r"data-00000-of-00002\.arrow, row 0: .*'missing' is undefined"):
        read_all(files, template=Template("{{missing}}"))


@pytest.mark.parametrize("kind", [".arrow", ".json.zst"])
def test_reading_from_a_records_after_yields_the_rest_as_the_whole_read_does(tmp_path, kind):
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(7)]
    files = [write_docs(tmp_path / f"a{kind}", docs), write_docs(tmp_path / f"b{kind}", [{"text": "b"}])]
    whole = read_all(files)
    for k in (0, 2, 5, 6):
        seen = {r.id: r.where for r in whole[:k + 1]}
        assert read_all(files, start=whole[k].after, seen_ids=seen) == whole[k + 1:]
