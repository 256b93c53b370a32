"""Faults from outside a build: its corpus's storage going down, its disk filling up.

Each fault is a real one: an S3 server (moto, on localhost) stopped while a
build reads from it, a size-limited file system that the kernel reports full.
The writer must stop with one line naming the cause, harm nothing already
written, and, rerun once the cause is gone, write the index an uninterrupted
build writes.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import run, snapshot
from nagindex.atomic import LEFTOVER
from nagindex.corpus import find_files, read_records
from nagindex.verify import verify


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "nagindex.cli", *map(str, args)]


def _leftovers(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if LEFTOVER.fullmatch(p.name)]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the build ended before {path} was written: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{path} was not written in {timeout} s"
        time.sleep(0.005)


@pytest.fixture
def stoppable_s3(monkeypatch):
    """An S3 server (moto) on localhost that a test stops and starts again on the same port, its data kept.

    Yields ``(url_of_upload, stop, start, env)``: ``env`` is what a ``nagindex`` subprocess needs to reach it.
    """
    import logging

    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)]
    servers[0].start()
    host, port = servers[0].get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_MAX_ATTEMPTS": "1"}       # a connection refused is told at once, not after botocore's retries
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
    fs = fsspec.filesystem("s3", skip_instance_cache=True)

    def upload(local: Path, bucket: str) -> str:
        fs.mkdir(bucket)
        for path in sorted(local.rglob("*")):
            fs.put_file(str(path), f"{bucket}/{path.relative_to(local).as_posix()}")
        return f"s3://{bucket}"

    def start():
        servers.append(ThreadedMotoServer(ip_address=host, port=port, verbose=False))
        servers[-1].start()

    yield upload, lambda: servers[-1].stop(), start, {**os.environ, "FSSPEC_S3_ENDPOINT_URL": endpoint}
    servers[-1].stop()


def _small_files(demo_corpus: Path, to: Path, per_file: int = 2) -> Path:
    """The demo corpus's records, ``per_file`` to a JSONL file: a remote build then opens one file a window."""
    records = list(read_records(find_files(demo_corpus / "corpus"), root=demo_corpus / "corpus"))
    to.mkdir()
    for k in range(0, len(records), per_file):
        (to / f"part-{k // per_file:03d}.jsonl").write_text(
            "".join(json.dumps({"id": r.id, "text": r.text}) + "\n" for r in records[k:k + per_file]))
    return to


def test_a_storage_gone_mid_build_is_named_and_the_rerun_once_it_is_back_writes_the_same_index(
        tiny_model, demo_corpus, stoppable_s3, tmp_path):
    upload, stop, start, env = stoppable_s3
    bucket = upload(_small_files(demo_corpus, tmp_path / "corpus"), "faults")
    # --skip-bad: a connection that fails is no bad record, and must not be skipped as one.
    args = ("build", f"{bucket}/", "--model", tiny_model, "--window", "2", "--skip-bad", "--quiet")
    run(*args, "-o", tmp_path / "reference.index")

    index = tmp_path / "s3.index"
    proc = subprocess.Popen(_cli(*args, "-o", index), env=env, stderr=subprocess.PIPE, text=True)
    _wait_for(index / "shards" / "00000.partial" / "part-000000.h5", proc)
    os.kill(proc.pid, signal.SIGSTOP)        # the server goes down while the build is between two files
    stop()
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert re.search(rf"Error: {bucket}/part-\d+\.jsonl: cannot reach it, the connection failed \(.*"
                     rf"Could not connect to the endpoint URL.*\); nothing is wrong with the file", err), err

    # Nothing harmed: the finished windows kept, nothing half written, no index claimed.
    partial = index / "shards" / "00000.partial"
    assert partial.is_dir() and not (index / "manifest.json").exists() and not _leftovers(index)
    kept = sorted(partial.glob("part-*.h5"))
    assert kept and not (partial / "skipped.jsonl").exists()

    start()
    result = subprocess.run(_cli(*args, "-o", index), env=env, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got, want = snapshot(index), snapshot(tmp_path / "reference.index")
    assert got["ids"] == want["ids"] and got["tokens"] == want["tokens"] and (got["codes"] == want["codes"]).all()
    shard = json.loads((index / "shards" / "00000" / "shard.json").read_text())
    assert shard["files"] == json.loads((tmp_path / "reference.index" / "shards" / "00000" / "shard.json")
                                        .read_text())["files"]
    assert shard["skipped"] == 0 and verify(index).ok

    # Texts fetched back from storage that has gone: named as well.
    stop()
    fetched = run("query", demo_corpus / "targets.jsonl", "-i", index, "-k", "5", "--with-text", ok=False)
    assert fetched.exit_code == 1 and re.search(rf"Error: {bucket}/part-\d+\.jsonl: cannot reach it, the "
                                                r"connection failed", fetched.output), fetched.output


PAGE = 4096


def _pages(size: int) -> int:
    """The bytes a file of ``size`` bytes takes on tmpfs: whole pages."""
    return -(-size // PAGE) * PAGE


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of 8 MiB (tmpfs), and ``fill(leave)``: a ballast file that leaves ``leave`` bytes free.

    The kernel itself then answers a write past the end with ENOSPC, whatever library makes it.
    """
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({mounted.stderr.strip()}); mounting needs root "
                    "(CAP_SYS_ADMIN), and a full file system cannot be had otherwise without one")
    ballast = disk / "ballast"

    def fill(leave: int) -> None:
        st = os.statvfs(disk)
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
        try:
            os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize - leave)
        finally:
            os.close(fd)

    yield disk, fill, lambda: ballast.unlink()
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def _same(a: Path, b: Path) -> bool:
    got, want = snapshot(a), snapshot(b)
    return got["ids"] == want["ids"] and got["tokens"] == want["tokens"] and (got["codes"] == want["codes"]).all()


def test_a_disk_full_during_an_append_window_is_named_and_harms_nothing(tiny_model, demo_corpus, small_disk, tmp_path):
    disk, fill, free = small_disk
    files = sorted(p for p in (demo_corpus / "corpus").rglob("*") if p.is_file())
    common = ("--model", tiny_model, "--window", "4", "--quiet")
    reference, index = tmp_path / "reference.index", disk / "full.index"
    for path in (reference, index):
        run("build", *files[0::2], "-o", path, *common)
    before = snapshot(index)
    run("build", *files[1::2], "-o", reference, "--append", *common)

    fill(leave=6 * PAGE)                    # the plan, the lock's record and a window or so
    args = _cli("build", *files[1::2], "-o", index, "--append", *common)
    failed = subprocess.run(args, stderr=subprocess.PIPE, text=True, timeout=300)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert re.search(rf"Error: {index}/shards/00001\.partial/part-\d{{6}}\.h5: no space left on device "
                     r"\([\d,]+ bytes free of [\d,]+ on its file system\)", failed.stderr), failed.stderr
    # The index as it was: the same documents and codes, every checksum right, nothing half written.
    after = snapshot(index)
    assert after["ids"] == before["ids"] and (after["codes"] == before["codes"]).all()
    assert verify(index).ok and not _leftovers(index)

    free()
    run("build", *files[1::2], "-o", index, "--append", *common)
    assert _same(index, reference) and verify(index).ok


@pytest.mark.parametrize("stored", ["codes.h5", "vectors.faiss"])
def test_a_disk_full_while_a_build_joins_its_windows_is_named_and_the_rerun_completes(
        tiny_model, demo_corpus, small_disk, tmp_path, stored):
    disk, fill, free = small_disk
    common = ("--model", tiny_model, "--window", "1000", "--quiet")    # one window: its part, then the shard's files
    reference, index = tmp_path / "reference.index", disk / "full.index"
    run("build", demo_corpus / "corpus", "-o", reference, *common)
    run("build", demo_corpus / "corpus", "-o", tmp_path / "ordered.index", "--codes", "ordered", *common)
    part = _pages((tmp_path / "ordered.index" / "shards" / "00000" / "codes.h5").stat().st_size)   # parts are ordered
    codes, vectors = (_pages((reference / "shards" / "00000" / name).stat().st_size)
                      for name in ("codes.h5", "vectors.faiss"))
    # Room for the plan, the lock's record and the window's part (the codes and their ids), then half of the file.
    fill(leave=4 * PAGE + part + (codes // 2 if stored == "codes.h5" else codes + vectors // 2))
    args = _cli("build", demo_corpus / "corpus", "-o", index, *common)
    failed = subprocess.run(args, stderr=subprocess.PIPE, text=True, timeout=300)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert f"Error: {index}/shards/00000.partial/{stored}: no space left on device" in failed.stderr
    # The window's part is kept, for the rerun to start from; no index is claimed, nothing is half written.
    assert (index / "shards" / "00000.partial" / "part-000000.h5").is_file()
    assert not (index / "manifest.json").exists() and not _leftovers(index)

    free()
    run("build", demo_corpus / "corpus", "-o", index, *common)
    assert _same(index, reference) and verify(index).ok


def test_a_disk_full_during_a_merge_is_named_and_the_merge_rerun_once_there_is_room(
        tiny_model, demo_corpus, small_disk, tmp_path):
    disk, fill, free = small_disk
    reference, index = tmp_path / "reference.index", disk / "full.index"
    for path in (reference, index):
        for i in range(2):
            run("build", demo_corpus / "corpus", "-o", path, "--shard", f"{i}/2", "--model", tiny_model, "--quiet")
    run("merge", reference)
    parts = {p: p.read_bytes() for p in (index / "shards").rglob("*") if p.is_file()}

    fill(leave=0)                           # no room for the lock's record: the lock is left free
    refused = run("merge", index, ok=False)
    assert f"Error: {index}/locks/index.json: no space left on device" in refused.output
    free()
    fill(leave=PAGE)                        # the lock's record, and no room for the manifest
    failed = subprocess.run(_cli("merge", index), stderr=subprocess.PIPE, text=True, timeout=300)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert f"Error: {index}/manifest.json: no space left on device" in failed.stderr
    assert not (index / "manifest.json").exists() and not _leftovers(index)
    assert {p: p.read_bytes() for p in (index / "shards").rglob("*") if p.is_file()} == parts

    free()
    run("merge", index)
    assert _same(index, reference) and verify(index).ok
