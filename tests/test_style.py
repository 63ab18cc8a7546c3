"""One formatter and one linter over the whole tree, configured once in .ci/ruff.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".ci" / "ruff.toml"


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--config", str(CONFIG), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_is_formatted():
    proc = ruff("format", "--check")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_the_linter_finds_nothing():
    proc = ruff("check", "--no-cache")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


# The size iotlight.py must keep (issue "A file you can hold in your head"): the whole daemon in at
# most 6,500 formatted lines, no class over 400 lines, no function over 60. ruff's complexity rules
# (.ci/ruff.toml: C901, PLR0912, PLR0915) hold each function's shape; these hold the file's.
LINE_BUDGET, CLASS_LINES, FUNCTION_LINES = 6500, 400, 60


def _sizes(kinds: tuple) -> list:
    import ast

    tree = ast.parse((ROOT / "iotlight.py").read_text(encoding="utf-8"))
    return sorted(
        ((n.end_lineno - n.lineno + 1, n.name) for n in ast.walk(tree) if isinstance(n, kinds)), reverse=True
    )


def test_iotlight_py_keeps_its_line_budget():
    lines = len((ROOT / "iotlight.py").read_text(encoding="utf-8").splitlines())
    assert lines <= LINE_BUDGET, "iotlight.py has %d lines, over its budget of %d" % (lines, LINE_BUDGET)


def test_no_class_or_function_outgrows_its_job():
    import ast

    classes = [(n, name) for n, name in _sizes((ast.ClassDef,)) if n > CLASS_LINES]
    functions = [
        (n, name) for n, name in _sizes((ast.FunctionDef, ast.AsyncFunctionDef)) if n > FUNCTION_LINES
    ]
    assert not classes and not functions, "over size: %r %r" % (classes, functions)


NODE_ROUTES = ("/addresses", "/alias", "/assets", "/blocks", "/transactions", "/node", "/utils", "/debug")


def test_only_the_node_client_names_a_node_route():
    """The node client is the only door to the node: no string that starts a node route (a literal
    or the head of a %-format) stands outside class NodeClient and the class of routes it is built on."""
    import ast

    tree = ast.parse((ROOT / "iotlight.py").read_text(encoding="utf-8"))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    client = classes["NodeClient"]
    doors = [client] + [classes[b.id] for b in client.bases if isinstance(b, ast.Name) and b.id in classes]
    inside = {line for c in doors for line in range(c.lineno, c.end_lineno + 1)}
    routes = [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith(NODE_ROUTES)
    ]
    assert routes, "the check found no route at all: it would pass on anything"
    assert [r for r in routes if r[0] not in inside] == []
