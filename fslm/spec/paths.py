"""Paths a user gives (on the command line or in a file), made absolute without an exception escaping."""

from __future__ import annotations

from pathlib import Path

from fslm.errors import FslmError
from fslm.files import check_path_name, resolved


def resolve_path(path: str | Path, base_dir: Path | None = None, what: str = "file") -> Path:
    """`path` (relative to `base_dir`, else the working directory) absolute, `~` expanded, symlinks resolved.

    FslmError for a path no file can have (a NUL, a lone surrogate) or a `~user` of no known user; a symlink
    loop is left in, for reading the file to report."""
    check_path_name(Path(path), what)
    try:
        expanded = Path(path).expanduser()
    except RuntimeError as error:
        raise FslmError(f"the {what} path {str(path)!r} cannot be expanded: {error}") from None
    return resolved(base_dir / expanded if base_dir is not None else expanded)


def is_file(path: Path) -> bool:
    """`path.is_file()`, False (not an exception) where the system refuses to look (a name too long, no
    access)."""
    try:
        return path.is_file()
    except OSError:
        return False


def is_dir(path: Path) -> bool:
    """`path.is_dir()`, False (not an exception) where the system refuses to look (a name too long, no
    access)."""
    try:
        return path.is_dir()
    except OSError:
        return False
