"""Where dnv writes files: refuse outputs that would destroy something, check them before the work starts,
lock an encode's output while it is written, and create files with the permissions the umask gives.

`-` (standard output) is never a path here: every check passes it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:     # not POSIX: no lock (the atomic rename still keeps every file whole)
    fcntl = None

STDOUT = "-"


class OutputError(ValueError):
    """An output that must not or cannot be written: one line saying why."""


def _umask() -> int:
    mask = os.umask(0o022)   # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from open(): 0o666 less the umask (mkstemp's own 0o600 is for secrets)."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    return 0o777 & ~_umask()


def temp_file(path, suffix: str = ".part") -> Path:
    """An empty temporary file beside `path` (same folder, so that a rename replaces `path` atomically),
    with the permissions a new file gets."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return Path(tmp)


def temp_folder(path, suffix: str = ".partial") -> Path:
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent))
    tmp.chmod(folder_mode())
    return tmp


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)     # symbolic and hard links too
    except OSError:
        return False


def check_output(path, *, overwrite: bool, sources=(), others=(), option: str = "-o",
                 folder_ok: bool = False) -> None:
    """Raise OutputError unless `path` may be written now.

    Never one of `sources` (the inputs: same file, through links too) nor one of `others` (the command's
    other outputs); not an existing file unless `overwrite`; not a folder unless `folder_ok` (then an existing
    folder is left to the writer's own checks); and its folder must exist and take a new file (permissions,
    read-only file systems), which is tried by creating and removing a temporary file there.
    """
    if path is None or str(path) == STDOUT:
        return
    p = Path(path)
    for source in sources:
        if source is not None and str(source) != STDOUT and _same_file(p, source):
            raise OutputError(f"{option} {p} is the input {source}; choose another output")
    for other_option, other in others:
        if other is None or str(other) == STDOUT:
            continue
        if p.resolve() == Path(other).resolve() or _same_file(p, other):
            raise OutputError(f"{option} {p} and {other_option} {other} name the same file")
    if p.is_dir():
        if not folder_ok:
            raise OutputError(f"{option} {p} is a folder; give a file name")
    elif p.exists() or p.is_symlink():
        if not overwrite:
            raise OutputError(f"{option} {p} exists; add -y (--overwrite) to replace it")
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(f"{option} {p}: the folder {parent} does not exist")
    try:
        temp_file(p, ".probe").unlink()
    except OSError as e:
        raise OutputError(f"{option} {p}: cannot write in {parent} ({e.strerror or e})") from None


class OutputLock:
    """An exclusive lock beside an output (`.NAME.lock`), held while an encode writes it, so that a second
    encode to the same output is refused at once instead of sharing its checkpoint and losing one result.

    The lock is the operating system's (flock), so it goes with the process, even after `kill -9`; the file
    itself is removed on release, and a lock taken on a file that was removed meanwhile is taken again.
    """

    def __init__(self, output):
        output = Path(output)
        self.output = output
        self.path = output.with_name(f".{output.name}.lock")
        self._fd = None

    def acquire(self) -> None:
        if fcntl is None or str(self.output) == STDOUT:
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
            except OSError as e:
                raise OutputError(f"-o {self.output}: cannot create the lock {self.path} "
                                  f"({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise OutputError(f"-o {self.output} is being written by another dnv encode"
                                  + (f" (process {holder})" if holder.isdigit() else "")
                                  + "; wait for it to end or choose another output") from None
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)      # the holder removed the file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)   # while still holding it: no one can take a file about to go
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *_exc) -> None:
        self.release()
