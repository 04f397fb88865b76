"""The email-hash key: GLOBOLATTE_HASH_KEY honoured locally, and the local key file created safely."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import stat
import threading
from pathlib import Path

import dagster as dg

from globolatte_dagster.resources import local_resources
from globolatte_dagster.resources.secrets import HashKey

PROCESSES = 12
TRIALS = 15


def _create(path: str, barrier, results) -> None:
    os.umask(0)  # the key file's mode must not depend on the umask
    barrier.wait()
    try:
        results.put(HashKey(key_file=path).get())
    except Exception as exc:  # reported, so the test fails with the reason instead of waiting
        results.put(f"failed: {type(exc).__name__}: {exc}")


def _watch(folder: Path, stop: threading.Event, seen: set[int]) -> None:
    """Record the permission bits of every file that ever appears in `folder` (key or temporary)."""
    while not stop.is_set():
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                seen.add(stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode))


def test_concurrent_creators_agree_on_one_key_that_is_never_readable_by_others(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    for trial in range(TRIALS):
        folder = tmp_path / f"home-{trial}" / "secrets"
        folder.mkdir(parents=True)
        path = folder / "email_hash_key"
        barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
        seen: set[int] = set()
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(folder, stop, seen))
        watcher.start()
        procs = [ctx.Process(target=_create, args=(str(path), barrier, results)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        keys = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        stop.set()
        watcher.join()
        assert [p.exitcode for p in procs] == [0] * PROCESSES
        assert set(keys) == {path.read_text().strip()}, f"trial {trial}: creators used different keys"
        assert len(keys[0]) == 64
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert seen <= {0o600}, f"trial {trial}: a key file was readable by others: {sorted(map(oct, seen))}"
        assert [p.name for p in folder.iterdir()] == ["email_hash_key"]  # no temporary file left


def test_an_existing_key_is_kept(tmp_path: Path):
    path = tmp_path / "secrets" / "email_hash_key"
    first = HashKey(key_file=str(path)).get()
    assert HashKey(key_file=str(path)).get() == first and path.read_text() == first


def test_globolatte_hash_key_is_used_locally_when_set(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GLOBOLATTE_HOME", str(tmp_path))
    monkeypatch.setenv("GLOBOLATTE_HASH_KEY", "key-from-the-environment")
    resource = local_resources()["hash_key"]
    with dg.build_resources({"hash_key": resource}) as built:
        assert built.hash_key.get() == "key-from-the-environment"
    assert not (tmp_path / "secrets" / "email_hash_key").exists()  # no local key was generated
    monkeypatch.delenv("GLOBOLATTE_HASH_KEY")
    with dg.build_resources({"hash_key": local_resources()["hash_key"]}) as built:
        generated = built.hash_key.get()
    assert generated != "key-from-the-environment" and len(generated) == 64
    assert (tmp_path / "secrets" / "email_hash_key").read_text() == generated
