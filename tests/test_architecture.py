"""The house rules of ../shared/ARCHITECTURE.md, checked on the source: each layer imports only from the
layers below it, kernels import nothing of the library, and no two packages import each other."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Bottom to top. A module may import from its own layer's package and from lower layers only.
LAYERS = [
    {"kernels"},
    {"checks", "io", "graph", "metrics", "report", "profiling", "requests", "certificate"},
    {"datasets"},
    {"sampling"},
    {"store", "hetero"},
    {"distributed"},
    {"nn"},
    {"models"},
    {"tasks"},
    {"train"},
    {"unlearning"},
    {"evaluate"},
    {"certify"},
    {"bench"},
    {"cli"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: Path) -> str:
    """The top-level unit a file belongs to: a subpackage of graphunlearn, a top-level module, or kernels."""
    rel = path.relative_to(REPO)
    if rel.parts[0] == "kernels":
        return "kernels"
    return rel.parts[1].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Units of graphunlearn that ``path`` imports (at module level or inside functions)."""
    rel = path.relative_to(REPO)
    package = list(rel.parts[:-1])
    if rel.parts[0] == "kernels":
        package = ["graphunlearn", "kernels"] + package[1:]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not node.module else [target]
            else:
                names = [node.module.split(".")] if node.module else []
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        for parts in names:
            if parts[0] == "graphunlearn" and len(parts) > 1 and parts[1] in LEVEL:
                out.add(parts[1])
    return out


def _graph() -> dict[str, set[str]]:
    files = list((REPO / "graphunlearn").rglob("*.py")) + list((REPO / "kernels").rglob("*.py"))
    deps: dict[str, set[str]] = {}
    for f in files:
        unit = _unit(f)
        if unit == "__init__":
            continue
        assert unit in LEVEL, f"{f.relative_to(REPO)} is in no layer of tests/test_architecture.py: place it"
        deps.setdefault(unit, set()).update(_imports(f) - {unit})
    return deps


def test_every_import_goes_down_the_layers():
    wrong = [(a, b) for a, targets in _graph().items() for b in targets if LEVEL[b] > LEVEL[a]]
    assert not wrong, f"imports from a higher layer (importer, imported): {sorted(wrong)}"


def test_kernels_are_leaves_and_the_store_knows_no_model():
    deps = _graph()
    assert deps.get("kernels", set()) == set()
    assert not deps["store"] & {"nn", "models", "tasks", "train", "unlearning", "evaluate"}
    assert "unlearning" not in deps["evaluate"]


def test_no_two_units_import_each_other():
    deps = _graph()
    mutual = sorted((a, b) for a in deps for b in deps[a] if a < b and a in deps.get(b, set()))
    assert not mutual, f"units that import each other: {mutual}"


def test_the_checker_sees_imports():
    """Guard against a checker that finds nothing: known imports are found."""
    deps = _graph()
    assert "tasks" in deps["train"] and "train" in deps["unlearning"] and "store" in deps["tasks"]
