"""The spec-string grammar of spec §11: parsing, binding arguments to parameters, canonical repr.

    item  := NAME [ "(" [ args ] ")" ]          arg := value | NAME "=" value
    value := NUMBER | "[" [ INT {"," INT} ] "]" | INT {"," INT}   (the last: semicolon form only)

Every failure raises SpecError with the one-line message ``invalid <kind> "<item>": <problem>``.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

_REQUIRED = object()

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_PUNCT = "()[],;="
_JUNK = re.compile(r"[^\s()\[\],;=]+")


class SpecError(ValueError, RuntimeError):
    """A spec string that does not parse; the message is one line (spec §11.3)."""


@dataclass(frozen=True)
class Param:
    """A declared parameter: its name, default (required if omitted) and value kind."""

    name: str
    default: Any = _REQUIRED
    is_list: bool = False
    check: Any = None  # (predicate(value, bound_values), expectation text) or None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass(frozen=True)
class _Token:
    kind: str  # name, number, punct, junk, end
    text: str
    pos: int


@dataclass(frozen=True)
class _Arg:
    name: str | None
    kind: str  # number, list, bad
    value: Any
    text: str
    pos: int


class _Parser:
    def __init__(self, item: str, fail):
        self.item = item
        self.pos = 0
        self.fail = fail

    def peek(self) -> _Token:
        text, pos = self.item, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return _Token("end", "", pos)
        if text[pos] in _PUNCT:
            return _Token("punct", text[pos], pos)
        for kind, pattern in (("number", _NUMBER), ("name", _NAME), ("junk", _JUNK)):
            match = pattern.match(text, pos)
            if match:
                return _Token(kind, match.group(), pos)
        raise AssertionError("unreachable: _JUNK matches any other character")

    def take(self) -> _Token:
        token = self.peek()
        self.pos = token.pos + len(token.text)
        return token

    def syntax_error(self, expected: str):
        token = self.peek()
        got = "end of text" if token.kind == "end" else f'"{token.text}"'
        self.fail(f"syntax error at position {token.pos}: expected {expected}, got {got}")

    def expect(self, punct: str) -> None:
        if self.peek().text != punct or self.peek().kind != "punct":
            self.syntax_error(f'"{punct}"')
        self.take()


def _is_semicolon_form(item: str, start: int) -> bool:
    """Whether the argument list opening at ``start`` has a ';' at its own bracket level."""
    depth = 0
    for char in item[start:]:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == ")" and depth <= 0:
            return False
        elif char == ";" and depth == 0:
            return True
    return False


def _parse_int_list(p: _Parser) -> list[int]:
    p.expect("[")
    values: list[int] = []
    if p.peek().text == "]":
        p.take()
        return values
    while True:
        token = p.peek()
        if token.kind != "number" or not _INT.fullmatch(token.text):
            p.syntax_error("an integer")
        values.append(int(p.take().text))
        if p.peek().text == "]":
            p.take()
            return values
        p.expect(",")


def _parse_value(p: _Parser, name: str | None, semicolon: bool) -> _Arg:
    token = p.peek()
    if token.kind == "punct" and token.text == "[":
        values = _parse_int_list(p)
        return _Arg(name, "list", values, p.item[token.pos : p.pos], token.pos)
    if token.kind == "number":
        p.take()
        if not (semicolon and p.peek().text == ","):
            return _Arg(name, "number", token.text, token.text, token.pos)
        if not _INT.fullmatch(token.text):
            p.fail(f'syntax error at position {token.pos}: expected an integer, got "{token.text}"')
        values = [int(token.text)]
        while p.peek().text == ",":
            p.take()
            if p.peek().kind != "number" or not _INT.fullmatch(p.peek().text):
                p.syntax_error("an integer")
            values.append(int(p.take().text))
        return _Arg(name, "list", values, p.item[token.pos : p.pos], token.pos)
    if token.kind in ("name", "junk"):
        p.take()
        return _Arg(name, "bad", token.text, token.text, token.pos)
    p.syntax_error("a value")
    raise AssertionError("unreachable")


def _parse_args(p: _Parser) -> list[_Arg]:
    p.expect("(")
    if p.peek().text == ")":
        p.take()
        return []
    semicolon = _is_semicolon_form(p.item, p.pos)
    sep = ";" if semicolon else ","
    args: list[_Arg] = []
    while True:
        first, second = p.peek(), None
        if first.kind == "name":
            saved = p.pos
            p.take()
            second = p.peek()
            p.pos = saved
        if second is not None and second.text == "=":
            p.take()
            p.take()
            args.append(_parse_value(p, first.text, semicolon))
        else:
            if first.kind == "end" or (first.kind == "punct" and first.text != "["):
                p.syntax_error("a value")  # an empty argument
            if any(arg.name is not None for arg in args):
                p.fail(f"positional argument after named argument at position {first.pos}")
            args.append(_parse_value(p, None, semicolon))
        token = p.peek()
        if token.text == ")" and token.kind == "punct":
            p.take()
            return args
        if token.text != sep:
            p.syntax_error(f'"{sep}" or ")"')
        p.take()


def _bind(args: list[_Arg], params: tuple[Param, ...], fail) -> dict[str, _Arg]:
    names = [param.name for param in params]
    bound: dict[str, _Arg] = {}
    positional = [arg for arg in args if arg.name is None]
    if len(positional) > len(params):
        takes = f"at most {len(params)} ({', '.join(names)})" if params else "none"
        fail(f"too many arguments: takes {takes}, got {len(positional)}")
    for param, arg in zip(params, positional, strict=False):
        bound[param.name] = arg
    for arg in args:
        if arg.name is None:
            continue
        if arg.name not in names:
            expected = f"expected {', '.join(names)}" if names else "takes no parameters"
            fail(f'unknown parameter "{arg.name}"; {expected}')
        if arg.name in bound:
            fail(f"parameter {arg.name} given twice")
        bound[arg.name] = arg
    return bound


def _number(arg: _Arg, fail) -> float:
    if arg.kind != "number":
        fail(f'parameter {arg.name}: expected a number, got "{arg.text}"')
    value = float(arg.value)
    if not math.isfinite(value):
        fail(f'parameter {arg.name}: expected a finite number, got "{arg.text}"')
    return value


def _int_list(arg: _Arg, fail) -> list[int]:
    if arg.kind == "number" and _INT.fullmatch(arg.text):
        return [int(arg.text)]
    if arg.kind != "list":
        fail(f'parameter {arg.name}: expected a list of integers, got "{arg.text}"')
    return list(arg.value)


def _convert(bound: dict[str, _Arg], params: tuple[Param, ...], fail) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in params:
        if param.name not in bound:
            if param.required:
                fail(f"missing required parameter {param.name}")
            values[param.name] = param.default
            continue
        arg = bound[param.name]
        arg = _Arg(param.name, arg.kind, arg.value, arg.text, arg.pos)
        values[param.name] = _int_list(arg, fail) if param.is_list else _number(arg, fail)
    for param in params:
        if param.check is not None and param.name in bound:
            predicate, expectation = param.check
            if not predicate(values[param.name], values):
                text = bound[param.name].text
                fail(f'parameter {param.name}: expected {expectation}, got "{text}"')
    return values


def _unknown_name(name: str, names: list[str], fail) -> None:
    lowered = {candidate.lower(): candidate for candidate in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    hint = f' (did you mean "{lowered[close[0]]}"?)' if close else ""
    fail(f'unknown name "{name}"{hint}; expected one of {", ".join(names)}')


def _parse_item(item: str, fail, check_name=None) -> tuple[str, list[_Arg]]:
    """The name and raw arguments of a whole item; ``check_name(name)`` runs before the args."""
    p = _Parser(item, fail)
    if p.peek().kind != "name":
        p.syntax_error("a name")
    name = p.take().text
    following = p.peek()
    if following.pos == p.pos and following.kind not in ("end", "punct"):  # e.g. "Linéar", "Re-LU":
        p.syntax_error('"(" or end of text')  # the word typed is not the name read, so say where
    if check_name is not None:
        name = check_name(name)
    args, expected = [], '"(" or end of text'
    if p.peek().text == "(":
        args, expected = _parse_args(p), "end of text"
    if p.peek().kind != "end":
        p.syntax_error(expected)
    return name, args


def _one_line(text: str) -> str:
    """``text`` with line breaks and tabs escaped, so that a message stays on one line."""
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _failer(kind: str, item: str):
    def fail(problem: str):
        raise SpecError(f'invalid {kind} "{_one_line(item)}": {problem}')

    return fail


def parse_spec(
    text: str, kind: str, table: dict[str, tuple[Param, ...]], aliases: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Parse ``text`` against ``table`` (name -> parameters): (canonical name, parameter values)."""
    item = text.strip() if isinstance(text, str) else str(text)
    fail = _failer(kind, item)

    def check_name(name: str) -> str:
        name = (aliases or {}).get(name, name)
        if name not in table:
            _unknown_name(name, list(table), fail)
        return name

    name, args = _parse_item(item, fail, check_name)
    params = table[name]
    return name, _convert(_bind(args, params, fail), params, fail)


def parse_call(text: str, kind: str = "item") -> tuple[str, list[tuple[str | None, str]]]:
    """The name and the (parameter name or None, value text) arguments of any item."""
    item = text.strip()
    name, args = _parse_item(item, _failer(kind, item))
    return name, [(arg.name, arg.text) for arg in args]


def format_value(value: Any) -> str:
    """A parameter value as it appears in a canonical spec: repr(float) or ``[1, 3, 5]``."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(int(v)) for v in value) + "]"
    return repr(float(value))


def format_spec(name: str, values: dict[str, Any]) -> str:
    """The canonical spec: ``Name(p1=v1, p2=v2)``, or the bare name without parameters."""
    if not values:
        return name
    return f"{name}({', '.join(f'{k}={format_value(v)}' for k, v in values.items())})"


def split_list(text: str, separators: str = ";") -> list[str]:
    """Split a command-line list at top-level separators (not inside parentheses or brackets)."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char in separators and depth == 0:
            items.append(text[start:index].strip())
            start = index + 1
    items.append(text[start:].strip())
    return items
