"""SHA-256 of files and folders, for the index versions and the model exports to be checked on open."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

CHUNK = 1 << 22
VERIFIED_MEMO = ".verified.json"  # each file's stat when its hash last matched


def sha256_file(path: Path, *, sample: int | None = None) -> str:
    """SHA-256 of a file; with ``sample``, of its size and its first and last ``sample`` bytes only."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if sample is None:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        else:
            size = os.fstat(f.fileno()).st_size
            h.update(str(size).encode())
            h.update(f.read(sample))
            f.seek(max(0, size - sample))
            h.update(f.read(sample))
    return h.hexdigest()


def folder_digests(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """SHA-256 of every file directly in ``folder`` but those named in ``skip``."""
    return {f.name: sha256_file(f) for f in sorted(folder.iterdir()) if f.is_file() and f.name not in skip}


def _stamp(f: Path) -> list[int]:
    st = f.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def first_mismatch(folder: Path, want: dict[str, str], *, memo: str | None = None) -> str | None:
    """The first file of ``want`` (name -> SHA-256) that is missing or altered in ``folder``, or None.

    With ``memo`` (a file name in ``folder``), a file whose size, mtime, ctime and inode are
    those it had when its hash last matched is not hashed again: any write moves the ctime,
    even one that puts the mtime back, so only a changed file is read. The memo is written
    best effort (a read-only folder is simply hashed in full each time).
    """
    seen: dict = {}
    if memo is not None:
        try:
            seen = json.loads((folder / memo).read_text())
        except (OSError, ValueError):
            seen = {}
        if not isinstance(seen, dict):
            seen = {}
    fresh = {}
    for name, digest in sorted(want.items()):
        f = folder / name
        try:
            fresh[name] = [*_stamp(f), digest]
            if seen.get(name) == fresh[name]:
                continue
            ok = sha256_file(f) == digest
        except OSError:
            ok = False
        if not ok:
            return name
    if memo is not None and fresh != seen:
        write_json(folder / memo, fresh)
    return None


def write_json(path: Path, data: dict) -> bool:
    """Replace ``path`` atomically with ``data`` as JSON; False (nothing raised) when it cannot be written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return False


def sealed_folder_damage(folder: Path, meta: dict, meta_name: str, *, needed: list[str]) -> str | None:
    """What is wrong with a model folder sealed by the ``sha256`` table of its metadata file, or None.

    ``meta`` (read from ``folder / meta_name``) maps every file to its SHA-256 under ``"sha256"``;
    each of ``needed`` must be listed. A folder written before digests were recorded gets
    them now (trust on first use), so the check applies from then on.
    """
    want = meta.get("sha256")
    if not isinstance(want, dict):
        want = folder_digests(folder, skip=(meta_name, VERIFIED_MEMO))
        write_json(folder / meta_name, {**meta, "sha256": want})
    unlisted = sorted(set(needed) - set(want))
    if unlisted:
        return f"{unlisted[0]} is not in its checksums"
    bad = first_mismatch(folder, want, memo=VERIFIED_MEMO)
    return f"{bad}: missing or altered, SHA-256 mismatch" if bad is not None else None


@contextlib.contextmanager
def made_once(lock_file: Path, what: str, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an inter-process lock on ``lock_file`` (the ``filelock`` package) while making ``what``.

    Of several processes that need the same model export at once (replicas starting together on a
    fresh machine, test workers), one makes it; the others wait here, then find it made instead of
    each spending a minute of CPU on a copy. The caller checks again inside for what it needs."""
    from filelock import FileLock, Timeout

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if log:
            log(f"{what}: another process is making it; waiting for it")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def replace_with_copy(src: Path, dest: Path, *, skip: tuple[str, ...] = ()) -> None:
    """Make ``dest`` a copy of the folder ``src`` (but ``skip``): copied beside it first, then swapped in."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".copy-{dest.name}-", dir=dest.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*skip))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
