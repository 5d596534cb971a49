"""Atomic file writing: a temporary file in the target folder, then ``os.replace``.

A reader sees either the complete new file or the old one; a failed or interrupted write removes the
temporary file and leaves any existing file untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import IO


def _file_mode() -> int:
    """0o666 minus the process umask: the mode ``open`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _temporary_file(folder) -> tuple[int, str]:
    """A new hidden temporary file in ``folder``: (open handle, path)."""
    return tempfile.mkstemp(prefix=".nerva-xp-", suffix=".tmp", dir=folder)


def accepts_new_files(folder) -> bool:
    """Whether a file can be made in ``folder``: tried with a temporary file, removed at once
    (os.access says yes to root on read-only or pseudo file systems such as /proc)."""
    if not os.access(folder, os.W_OK):
        return False
    try:
        handle, probe = _temporary_file(folder)
    except OSError:
        return False
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True


def write_atomically(path, write: Callable[[IO[bytes]], None]) -> str:
    """Call ``write(file)`` on a temporary binary file, then move it to ``path`` (to its target,
    if ``path`` is a symbolic link); returns path."""
    path = os.fspath(path)
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    try:
        handle, temporary = _temporary_file(folder)
    except OSError as error:  # e.g. a folder that refuses new files: name the file asked for
        raise OSError(error.errno, f"cannot write: {error.strerror or error}", path) from error
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _file_mode())
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):  # name the file the user asked for
            raise OSError(error.errno, f"cannot write: {error.strerror or error}", path) from error
        raise
    return path
