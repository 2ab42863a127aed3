"""A small evaluator of GitHub Actions expressions, enough to test the workflows' own.

Follows GitHub's "Evaluate expressions in workflows and actions" reference: literals
(strings in single quotes with '' for a quote, numbers, true, false, null), context
properties (``github.event.pull_request.merged``; a missing one is null), ``!``, ``==``
and ``!=`` (strings compared ignoring case, as GitHub does), ``&&`` and ``||`` returning
one of their operands, parentheses, and ``format()``. Falsy: false, 0, '', null.
"""

from __future__ import annotations

import re
from typing import Any

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+)*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        matched = TOKEN.match(text, position)
        if not matched or matched.end() == position:
            raise ValueError(f"cannot read {text[position:]!r}")
        kind = matched.lastgroup or ""
        found.append((kind, matched.group(kind)))
        position = matched.end()
    return found


def truthy(value: Any) -> bool:
    return value not in (False, 0, "", None)


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    return bool(left == right)


class _Parser:
    def __init__(self, text: str, contexts: dict[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.contexts = contexts

    def peek(self) -> str | None:
        return self.tokens[0][1] if self.tokens else None

    def take(self) -> tuple[str, str]:
        return self.tokens.pop(0)

    def expression(self) -> Any:
        left = self.conjunction()
        while self.peek() == "||":
            self.take()
            right = self.conjunction()
            left = left if truthy(left) else right
        return left

    def conjunction(self) -> Any:
        left = self.comparison()
        while self.peek() == "&&":
            self.take()
            right = self.comparison()
            left = right if truthy(left) else left
        return left

    def comparison(self) -> Any:
        left = self.unary()
        while self.peek() in ("==", "!="):
            op = self.take()[1]
            right = self.unary()
            left = _equal(left, right) if op == "==" else not _equal(left, right)
        return left

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, text = self.take()
        if text == "(":
            value = self.expression()
            self.take()
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text) if "." in text else int(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self.peek() == "(":
            self.take()
            arguments = [self.expression()]
            while self.peek() == ",":
                self.take()
                arguments.append(self.expression())
            self.take()
            if text != "format":
                raise ValueError(f"function {text} is not supported here")
            template, *rest = arguments
            return re.sub(r"\{(\d+)\}", lambda m: str(rest[int(m.group(1))]), str(template))
        value: Any = self.contexts
        for part in text.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value


def evaluate(template: str, contexts: dict[str, Any]) -> Any:
    """A ``${{ ... }}`` value, or a string with expressions in it."""
    whole = re.fullmatch(r"\$\{\{(.*)\}\}", template.strip(), re.S)
    if whole:
        return _Parser(whole.group(1), contexts).expression()
    return re.sub(
        r"\$\{\{(.*?)\}\}", lambda m: str(_Parser(m.group(1), contexts).expression()), template
    )
