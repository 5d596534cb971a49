"""One-line descriptions of exceptions, for the project's one-line error messages."""

from __future__ import annotations


def describe_error(error: BaseException) -> str:
    """``TypeName: first line of the message`` (just the type name when there is no message)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0].strip()}" if lines else type(error).__name__
