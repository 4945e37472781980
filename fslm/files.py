"""Reading users' files and writing results so that a crash never leaves a half-written or lost file.

A file is written to a temporary sibling, flushed to disk, then renamed over the old one. A directory (an
adapter, a training checkpoint) is written to a staging sibling; the old one is renamed aside, the new one
renamed in, and only then is the old one deleted. At every moment one complete copy is on disk, and
`recover_directory` finishes a swap that a crash interrupted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fslm.errors import FslmError


def check_path_name(path: Path, what: str) -> None:
    """Refuse a path no file system can hold: one with a NUL, or text that cannot be encoded as a file
    name."""
    if "\0" in str(path):
        raise FslmError(
            f"the {what} path {str(path)!r} contains a NUL character, which no file name can hold"
        )
    try:
        os.fsencode(path)
    except UnicodeEncodeError as error:
        raise FslmError(
            f"the {what} path {str(path)!r} is not a possible file name ({error.reason}: "
            f"{str(path)[error.start : error.end]!r})"
        ) from error


def resolved(path: Path) -> Path:
    """`path` made absolute with symbolic links followed, like `Path.resolve()`, which raises RuntimeError on
    a symbolic link loop before Python 3.13: here the loop is left in, for reading it to report."""
    return Path(os.path.realpath(path))


def read_text_file(path: Path, what: str, encoding: str = "utf-8") -> str:
    """The text of the file at `path`; any reason it cannot be read is an FslmError naming `what` and the
    path."""
    check_path_name(path, what)
    if path.is_dir():
        raise FslmError(f"the {what} {path} is a directory, not a file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FslmError(f"cannot read the {what} {path}: {error.strerror or error}") from error
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise FslmError(
            f"the {what} {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
            "save it as UTF-8 and try again"
        ) from error


def check_output_file(path: Path, what: str = "output", inputs: Iterable[Path] = ()) -> None:
    """Make sure `path` can be written (creating a file in its directory, and removing it), before any work
    whose results it is meant to hold. Its missing parent directories are created only when it is written."""
    check_path_name(path, what)
    if path.is_dir():
        raise FslmError(f"the {what} {path} is a directory; give a file name")
    for source in inputs:
        if path.exists() and source.exists() and path.samefile(source):
            raise FslmError(f"the {what} {path} is also an input file; writing it would replace the input")
    if path.exists() and not os.access(path, os.W_OK):
        raise FslmError(f"the {what} {path} is read-only; make it writable or choose another file")
    check_can_create(path, what)


def check_can_create(path: Path, what: str) -> None:
    """Create and remove a file where `path` will be written (in the nearest directory that exists now, as
    missing parents are created on writing): a permission, a read-only disk or a file in the way shows now."""
    directory = _nearest_existing(path.parent)
    if not directory.is_dir():
        raise FslmError(f"cannot write the {what} {path}: {directory} is not a directory")
    try:
        handle, probe = _create_sibling(directory / path.name)
    except OSError as error:
        raise FslmError(
            f"cannot write the {what} {path}: {error.strerror or error} (in {directory})"
        ) from error
    os.close(handle)
    os.unlink(probe)


def write_text_atomically(path: Path, text: str, check: Callable[[Path], object] | None = None) -> None:
    """Replace `path` with `text` in one rename. `check` sees the finished temporary file (a sibling of
    `path`, with its suffix) and may raise to keep the old file."""
    write_bytes_atomically(path, text.encode("utf-8"), check)


def write_jsonl_atomically(path: Path, records: Iterable[Any]) -> None:
    # A lone surrogate in a string is written as a JSON escape (\udcff), which reads back as the same string.
    lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    write_bytes_atomically(path, "".join(lines).encode("utf-8", errors="backslashreplace"))


def write_bytes_atomically(path: Path, data: bytes, check: Callable[[Path], object] | None = None) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = _create_sibling(path)
    except OSError as error:
        raise FslmError(f"cannot write {path}: {error.strerror or error}") from error
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        if check is not None:
            check(temporary)
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except OSError as error:
        raise FslmError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        temporary.unlink(missing_ok=True)


def staging_directory(target: Path) -> Path:
    """A fresh, empty directory beside `target` to write its replacement in; `replace_directory` swaps it
    in."""
    recover_directory(target)
    staged = _staged(target)
    _remove(staged)
    staged.mkdir(parents=True)
    return staged


def kept_staging_directory(target: Path) -> Path:
    """The staging directory an interrupted run left beside `target`, as it is (a resumed run continues in
    it); FslmError when there is none."""
    recover_directory(target)
    staged = _staged(target)
    if not staged.is_dir():
        raise FslmError(
            f"nothing to resume: no interrupted run left its work beside {target} ({staged.name}); "
            "run without --resume"
        )
    return staged


def replace_directory(target: Path) -> None:
    """Swap the finished staging directory of `target` in: the old `target` is moved aside, the new one
    renamed in, then the old one deleted."""
    staged = _staged(target)
    _fsync_tree(staged)
    aside = _aside(target)
    _remove(aside)
    if target.exists() or target.is_symlink():
        target.rename(aside)
        _fsync_directory(target.parent)
    staged.rename(target)
    _fsync_directory(target.parent)
    _remove(aside)


def recover_directory(target: Path) -> None:
    """Finish a `replace_directory` that a crash interrupted: rename the complete copy into place."""
    aside = _aside(target)
    if not (aside.exists() or aside.is_symlink()):
        return
    if target.exists() or target.is_symlink():
        _remove(aside)  # the new copy was in place; only deleting the old one was left
        return
    # The old copy is set aside only once the new one is complete, so a staged copy here is whole.
    staged = _staged(target)
    (staged if staged.is_dir() else aside).rename(target)
    _remove(aside)


def _staged(target: Path) -> Path:
    return target.with_name(f".{target.name}.new")


def _aside(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _nearest_existing(directory: Path) -> Path:
    absolute = Path(os.path.abspath(directory))
    while not (absolute.exists() or absolute.is_symlink()) and absolute != absolute.parent:
        absolute = absolute.parent
    return absolute


def _create_sibling(path: Path) -> tuple[int, Path]:
    """A new file beside `path`, hidden, with the same suffix, created with the permissions the umask
    gives."""
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{path.suffix}")
    return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as file:
                os.fsync(file.fileno())
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable; best effort, as some file systems cannot sync a directory."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
