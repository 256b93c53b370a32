"""Generate the small built-in demo: a mixed-domain corpus and a targets file.

The demo lets a new user run the whole pipeline in minutes without downloading
anything, and gives the tests a corpus whose right answers are known: the
``science_qa`` targets should pull science documents, ``word_problems`` should
pull arithmetic ones. All text comes from the templates and vocabularies of ``data/demo.json``
(places, people and organisations are invented), filled in with
``random.Random`` seeded from ``seed``, so the same seed always yields
byte-identical files.

Usage: ``python -m nagindex.demo OUT_DIR [--docs 400] [--seed 0]``
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import string
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

N_NOTES = 5          # documents written as single .txt files under corpus/notes/
N_TARGETS = 12       # target examples per task
NOISE_RATE = 0.2     # share of documents given boilerplate and a low quality
MIN_WORDS = 40       # documents are extended up to 8 sentences to reach this

#: The demo's words: boilerplate lines, the template domains, the arithmetic
#: problems' names, items, intros and tips, and the science questions. Each
#: template domain: ``lead`` always opens the document, the rest are drawn
#: without replacement. ``vocab`` values are drawn three at a time without
#: replacement, bound to {key}, {key2} and {key3}, so one document keeps one
#: cast of names. ``records`` are coherent bundles of fields (one per document);
#: ``numbers`` are integer [lo, hi] or float [lo, hi, "f"] ranges. Science
#: questions are [question, answer, distractors, explanation].
DATA = Path(__file__).with_name("data") / "demo.json"


_WORDS = json.loads(DATA.read_text(encoding="utf-8"))
BOILERPLATE: list[str] = _WORDS["boilerplate"]
DOMAINS: dict[str, dict] = _WORDS["domains"]
NAMES: list[str] = _WORDS["names"]
ITEMS: list[str] = _WORDS["items"]
ARITH_INTROS: list[str] = _WORDS["arith_intros"]
ARITH_TIPS: list[str] = _WORDS["arith_tips"]
SCIENCE_QA: list[list] = _WORDS["science_qa"]


# Arithmetic problems are built in code rather than from flat templates, so that
# every stated answer is correct. Each builder returns (setup, question, steps, answer).


def _p_multiply(r):
    n, a, b, it = r.choice(NAMES), r.randint(3, 12), r.randint(4, 15), r.choice(ITEMS)
    return ([f"{n} buys {a} boxes of {it}, and each box holds {b} {it}."], f"How many {it} does {n} have?",
            [f"{a} boxes times {b} {it} per box gives {a * b} {it}."], a * b)


def _p_add_sub(r):
    n, f, it = *r.sample(NAMES, 2), r.choice(ITEMS)
    a, b, c = r.randint(20, 60), r.randint(3, 19), r.randint(2, 30)
    return ([f"{n} had {a} {it}.", f"{n} gave {b} to {f} and then found {c} more."], f"How many {it} does {n} have now?",
            [f"After giving some away, {n} has {a} - {b} = {a - b}.", f"Adding the new ones gives {a - b} + {c} = {a - b + c}."], a - b + c)


def _p_divide(r):
    n, k, each, it = r.choice(NAMES), r.randint(2, 9), r.randint(3, 12), r.choice(ITEMS)
    group = r.choice(["friends", "classmates", "cousins", "teammates", "bags", "boxes"])
    return ([f"{n} has {k * each} {it} and splits them equally among {k} {group}."], f"How many {it} go to each of the {group}?",
            [f"Dividing {k * each} by {k} gives {each}.", f"To check, {k} x {each} = {k * each}."], each)


def _p_change(r):
    n, p, q = r.choice(NAMES), r.randint(2, 9), r.randint(2, 6)
    bill = next(b for b in (20, 50, 100) if b > p * q)
    return ([f"A notebook costs ${p}.", f"{n} buys {q} notebooks and pays with a ${bill} note."], f"How much change does {n} get?",
            [f"The notebooks cost {q} x ${p} = ${p * q}.", f"The change is ${bill} - ${p * q} = ${bill - p * q}."], bill - p * q)


def _p_distance(r):
    v, t = r.choice([40, 45, 50, 60, 75, 80, 90]), r.randint(2, 6)
    ride = r.choice(["A train", "A bus", "A car", "A ferry", "A delivery van"])
    return ([f"{ride} travels at {v} kilometres per hour for {t} hours."], "How far does it travel?",
            [f"Distance is speed times time, so {v} x {t} = {v * t} kilometres."], v * t)


def _p_discount(r):
    p, d = 20 * r.randint(2, 15), r.choice([10, 20, 25, 50])
    off = p * d // 100
    return ([f"A jacket costs ${p}.", f"The shop offers a {d}% discount."], "What is the sale price?",
            [f"The discount is {d}% of ${p}, which is ${off}.", f"The sale price is ${p} - ${off} = ${p - off}."], p - off)


PROBLEMS = [_p_multiply, _p_add_sub, _p_divide, _p_change, _p_distance, _p_discount]


def _fill(rng: random.Random, spec: dict) -> dict:
    """Bind every slot of one document: a record, vocab draws, and numbers."""
    b = dict(rng.choice(spec["records"])) if spec.get("records") else {}
    for key, words in spec.get("vocab", {}).items():
        for suffix, word in zip(("", "2", "3"), rng.sample(words, min(3, len(words)))):
            b[key + suffix] = word
    for key, rng_spec in spec.get("numbers", {}).items():
        b[key] = round(rng.uniform(*rng_spec[:2]), 1) if len(rng_spec) == 3 else rng.randint(*rng_spec)
    if "field" in b:
        b["Field"] = b["field"].capitalize()
    if "hi" in b:  # sports: a winner's and a loser's score in the sport's range
        b["s1"] = rng.randint(b["lo"] + 1, b["hi"])
        b["s2"] = rng.randint(b["lo"], b["s1"] - 1)
        b["stat"] = rng.randint(1, min(b["stat_hi"], max(1, b["s1"])))
    if "rev" in b:
        b["rev0"] = max(1, round(b["rev"] * rng.uniform(0.7, 1.3)))
    if "code" in b:
        b["code"] = b["code"].format_map(b)
    return b


def _template_doc(rng: random.Random, spec: dict) -> list[str]:
    """2-8 sentences: the lead, then distinct templates until long enough."""
    b = _fill(rng, spec)
    pool = rng.sample(spec["templates"], len(spec["templates"]))
    out = [spec["lead"].format_map(b)]
    if "code" in b:
        out.append(b["code"])
    want = rng.randint(2, 8)

    def prose_words() -> int:  # a code block does not count towards the length
        return sum(len(s.split()) for s in out if "\n" not in s)

    while pool and len(out) < 8 and (len(out) < want or prose_words() < MIN_WORDS):
        out.append(pool.pop().format_map(b))
    return out


def _arith_doc(rng: random.Random) -> list[str]:
    """A worked word problem written as a lesson, with an intro and a tip."""
    setup, question, steps, answer = rng.choice(PROBLEMS)(rng)
    out = [rng.choice(ARITH_INTROS).format(g=rng.randint(2, 6))] + setup + [question] + steps
    out.append(f"So the answer is {answer}.")
    if len(out) < 8:
        out.append(rng.choice(ARITH_TIPS))
    return out


def _join(sentences: list[str]) -> str:
    """Prose joined by spaces; multi-line code blocks set off by blank lines."""
    parts = [sentences[0]]
    for prev, s in zip(sentences, sentences[1:]):
        parts += ["\n\n" if "\n" in prev or "\n" in s else " ", s]
    return "".join(parts)


def _noisy(rng: random.Random, sentences: list[str]) -> tuple[str, float]:
    """Join sentences; some documents get boilerplate and a low quality score."""
    if rng.random() < NOISE_RATE:
        junk = rng.sample(BOILERPLATE, rng.randint(1, 2))
        sentences = junk[:1] + sentences + junk[1:] if rng.random() < 0.5 else sentences + junk
        return _join(sentences), round(rng.uniform(0.05, 0.4), 3)
    return _join(sentences), round(rng.uniform(0.65, 1.0), 3)


def make_documents(docs: int, seed: int) -> list[dict]:
    """Documents balanced across domains, in a seeded shuffled order."""
    rng = random.Random(f"nagindex-demo-corpus-{seed}")
    domains = sorted([*DOMAINS, "arithmetic"])
    counters = dict.fromkeys(domains, 0)
    out = []
    for i in range(docs):
        domain = domains[i % len(domains)]
        sentences = _arith_doc(rng) if domain == "arithmetic" else _template_doc(rng, DOMAINS[domain])
        text, quality = _noisy(rng, sentences)
        out.append({"id": f"{domain}-{counters[domain]:04d}", "text": text, "domain": domain, "quality": quality})
        counters[domain] += 1
    rng.shuffle(out)
    return out


def make_targets(seed: int) -> list[dict]:
    """Target examples for science_qa and word_problems, in Q/A form (unlike the corpus)."""
    rng = random.Random(f"nagindex-demo-targets-{seed}")
    out = []
    for q, answer, wrong, why in rng.sample(SCIENCE_QA, N_TARGETS):
        choices = rng.sample([answer, *wrong], 4)
        lines = [f"Question: {q}"] + [f"{string.ascii_uppercase[i]}) {c}" for i, c in enumerate(choices)]
        letter = string.ascii_uppercase[choices.index(answer)]
        lines.append(f"Answer: {letter}) {answer}. {why}")
        out.append({"text": "\n".join(lines), "target": "science_qa"})
    for i in range(N_TARGETS):
        setup, question, steps, answer = PROBLEMS[i % len(PROBLEMS)](rng)
        text = f"Question: {' '.join(setup)} {question}\nAnswer: {' '.join(steps)} The answer is {answer}."
        out.append({"text": text, "target": "word_problems"})
    return out


def _jsonl_bytes(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def make_demo(out_dir, docs: int = 400, seed: int = 0) -> dict:
    """Write ``corpus/`` (JSONL, gzipped JSONL, Parquet, notes/*.txt) and ``targets.jsonl``.

    Files are overwritten in place; stale note files from an earlier run with
    another seed are removed so that the corpus holds exactly ``docs`` documents.
    """
    if docs < N_NOTES + 3 * len(DOMAINS):
        raise ValueError(f"docs must be at least {N_NOTES + 3 * len(DOMAINS)}, got {docs}")
    out = Path(out_dir)
    corpus, notes = out / "corpus", out / "corpus" / "notes"
    notes.mkdir(parents=True, exist_ok=True)
    for old in notes.glob("*.txt"):
        if re.fullmatch(r"[a-z]+-\d{4}\.txt", old.name):
            old.unlink()

    records = make_documents(docs, seed)
    rest, note_docs = records[:-N_NOTES], records[-N_NOTES:]
    third = len(rest) // 3
    parts = [rest[:third], rest[third:2 * third], rest[2 * third:]]
    files = {}

    path = corpus / "web-00.jsonl"
    path.write_bytes(_jsonl_bytes(parts[0]))
    files[str(path)] = len(parts[0])

    path = corpus / "web-01.jsonl.gz"
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(_jsonl_bytes(parts[1]))
    files[str(path)] = len(parts[1])

    path = corpus / "web-02.parquet"
    table = pa.table({
        "id": pa.array([r["id"] for r in parts[2]], pa.string()),
        "text": pa.array([r["text"] for r in parts[2]], pa.string()),
        "domain": pa.array([r["domain"] for r in parts[2]], pa.string()),
        "quality": pa.array([r["quality"] for r in parts[2]], pa.float64()),
    })
    pq.write_table(table, path, compression="snappy", row_group_size=1024, version="2.6",
                   use_dictionary=False, write_statistics=False, store_schema=False)
    files[str(path)] = len(parts[2])

    for r in note_docs:
        path = notes / f"{r['id']}.txt"
        path.write_text(r["text"] + "\n", encoding="utf-8")
        files[str(path)] = 1

    targets = make_targets(seed)
    targets_path = out / "targets.jsonl"
    targets_path.write_bytes(_jsonl_bytes(targets))

    domains: dict[str, int] = {}
    for r in records:
        domains[r["domain"]] = domains.get(r["domain"], 0) + 1
    tasks: dict[str, int] = {}
    for t in targets:
        tasks[t["target"]] = tasks.get(t["target"], 0) + 1
    return {"docs": len(records), "seed": seed, "domains": dict(sorted(domains.items())), "targets": tasks,
            "corpus_dir": str(corpus), "targets_path": str(targets_path), "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the built-in nagindex demo corpus and targets.")
    parser.add_argument("out_dir")
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(make_demo(args.out_dir, docs=args.docs, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
