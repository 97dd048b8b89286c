"""Ranking formulas: arithmetic over dotted fields, parsed once and evaluated without eval().

Grammar (a subset of Python expressions): numbers, dotted names rooted at `offer`,
`profile`, `event`, `last_event` or `context` (e.g. `offer.fields.margin`,
`profile.attributes.affinity`), `+ - * / **`, unary minus, parentheses, and the functions
`min`, `max`, `abs`, `log`. A missing or non-numeric field counts as 0, so one incomplete
profile cannot fail a whole decision.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any

ROOTS = ("offer", "profile", "event", "last_event", "context")
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: lambda a, b: a / b if b else 0.0,
    ast.Pow: lambda a, b: float(a**b) if abs(b) <= 8 else 0.0,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "log": lambda x: math.log(x) if x > 0 else 0.0,
}


class FormulaError(ValueError):
    pass


@lru_cache(maxsize=256)
def parse(source: str) -> ast.expr:
    """The checked expression tree; `FormulaError` names what is not allowed."""
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as err:
        raise FormulaError(f"formula syntax: {err.msg}") from err
    _check(tree)
    return tree


def _check(node: ast.expr) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left)
        _check(node.right)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand)
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id not in _FUNCTIONS or node.keywords or not node.args:
            raise FormulaError(f"unknown function {node.func.id!r} (use {', '.join(_FUNCTIONS)})")
        for arg in node.args:
            _check(arg)
        return
    if isinstance(node, ast.Attribute | ast.Name):
        path = dotted(node)
        if path[0] not in ROOTS or len(path) < 2:
            raise FormulaError(f"field {'.'.join(path)!r} must start with {' / '.join(ROOTS)}")
        return
    raise FormulaError(f"not allowed in a formula: {ast.unparse(node)!r}")


def dotted(node: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise FormulaError(f"not a field: {ast.unparse(node)!r}")
    return [node.id, *reversed(parts)]


Compiled = Callable[[dict[str, Any]], float]


def evaluate(source: str, scope: dict[str, Any]) -> float:
    return compile_formula(source)(scope)


@lru_cache(maxsize=256)
def compile_formula(source: str) -> Compiled:
    """The checked formula as a tree of closures: parsed once, then evaluated per offer
    without walking the syntax tree again."""
    return _compile(parse(source))


def _compile(node: ast.expr) -> Compiled:
    if isinstance(node, ast.Constant):
        value = float(node.value)  # type: ignore[arg-type]  # _check allows numbers only
        return lambda _: value
    if isinstance(node, ast.BinOp):
        op, left, right = _BINARY[type(node.op)], _compile(node.left), _compile(node.right)
        return lambda scope: op(left(scope), right(scope))
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda scope: -operand(scope)
        return operand
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        fn, args = _FUNCTIONS[node.func.id], [_compile(a) for a in node.args]
        return lambda scope: float(fn(*(a(scope) for a in args)))
    path = dotted(node)

    def lookup(scope: dict[str, Any]) -> float:
        value: Any = scope
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if numeric else 0.0

    return lookup
