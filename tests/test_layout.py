"""The package's shape (issue #26): its folders are its architecture, and imports flow one way.

Every import counts: module-level, function-level and type-only ones alike, since each is a
dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chatbot"
# Each folder's place: a folder may import its own modules and those of lower ranks, never a
# higher rank, and never a folder of its own rank (training and decoding are strangers).
RANKS = {"text": 1, "data": 2, "corpora": 3, "models": 3, "training": 4, "decoding": 4,
         "export": 5, "serving": 5}
# The top: nothing inside imports them.
FRONT_ENDS = {"chat", "cli", "embeddings", "evaluate", "explain", "plot", "report"}
FOUNDATION = {"errors", "fields", "rundir"}  # the bottom: they import no other module of ours
# config.py composes the sections of config.json; it may read these modules' lists of choices
# and section dataclasses, which import nothing of ours above the foundation and the text.
CONFIG_READS = {"text.tokenizer", "data.pairs", "training.distribute", "decoding.settings",
                "models"}


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
            or "__init__": p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The chatbot modules `path` imports, by their name inside the package."""
    found = set()
    known = modules()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("chatbot."):
                inner = name.removeprefix("chatbot.")
                if inner in known:
                    found.add(inner)
        if isinstance(node, ast.ImportFrom) and node.module == "chatbot":
            found |= {a.name for a in node.names if a.name in known}
    return found


GRAPH = {name: imports(path) - {name} for name, path in modules().items()}


def folder(module: str) -> str:
    return module.split(".")[0]


def test_no_import_circles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_flow_one_way(module):
    for target in GRAPH[module]:
        where = f"{module} imports {target}"
        assert folder(target) not in FRONT_ENDS or folder(module) in FRONT_ENDS, where
        assert module.split(".")[0] not in FOUNDATION or target in FOUNDATION, where
        if module == "config":
            assert target in CONFIG_READS | FOUNDATION, where
        src, dst = RANKS.get(folder(module)), RANKS.get(folder(target))
        if src is not None and dst is not None and folder(module) != folder(target):
            assert dst < src, where


def test_at_most_twelve_files_at_the_top_and_modules_of_at_most_400_lines():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 12, top
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long


def test_training_never_imports_decoding_or_serving():
    for module, targets in GRAPH.items():
        if folder(module) == "training":
            assert not {folder(t) for t in targets} & {"decoding", "serving", "evaluate"}, module
