"""The layering of docs/ARCHITECTURE.md, checked on the source: no import cycles, no upward imports, small modules.

The import graph is read with :mod:`ast` from every module under ``src/radseg`` (imports
inside functions count too: a lazy import is still a dependency). ``from pkg import name``
is an import of ``pkg.name`` when that is a module, else of ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "radseg"
MAX_LINES = 400

#: Top-level part of radseg -> layer. A module may import its own layer and the ones below,
#: never a higher one. Keep in step with the table in docs/ARCHITECTURE.md.
LAYERS = {
    "errors": 0, "registry": 0, "system": 0,
    "radseg": 1, "image": 1, "labels": 1, "case": 1, "geometry": 1, "orientation": 1,
    "io": 2,
    "convert": 3, "info": 3, "scale": 3,
    "evaluate": 4, "models": 4,
    "annotate": 5, "datasets": 5, "features": 5, "synth": 5,
    "infer": 6,
    "train": 7,
    "workflows": 8, "demo": 8, "serve": 8,
    "commands": 9, "cli": 9, "__main__": 9,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    return {t for t in targets if t in modules and t != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "radseg"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_part_has_a_layer(graph):
    assert sorted({_part(m) for m in graph} - set(LAYERS)) == []


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_upward_imports(graph):
    upward = sorted(f"{m} (layer {LAYERS[_part(m)]}) imports {t} (layer {LAYERS[_part(t)]})"
                    for m, targets in graph.items() for t in targets
                    if LAYERS.get(_part(t), 99) > LAYERS.get(_part(m), -1))
    assert upward == []


def test_modules_stay_small():
    long = sorted(f"{p.relative_to(SRC)}: {n} lines" for p in PACKAGE.rglob("*.py")
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_LINES)
    assert long == []


def test_training_and_exports_read_prepared_data_through_the_one_reader(monkeypatch, tmp_path):
    """Train, the exporters and detection evaluation take their Cases from datasets.prepared.open_prepared."""
    import radseg.datasets.export_coco as coco
    import radseg.datasets.export_nnunet as nnunet
    import radseg.datasets.export_yolo as yolo
    import radseg.train.data as train_data
    import radseg.workflows.detection as detection

    class Sentinel(Exception):
        pass

    def refuse(path, **options):
        raise Sentinel(str(path))

    for module in (train_data, coco, nnunet, yolo, detection):
        monkeypatch.setattr(module, "open_prepared", refuse)
    calls = [lambda: train_data.load_prepared(tmp_path), lambda: coco.export(tmp_path, tmp_path / "c"),
             lambda: nnunet.export(tmp_path, tmp_path / "n"), lambda: yolo.export(tmp_path, tmp_path / "y"),
             lambda: detection.evaluate_detection(None, tmp_path)]
    for call in calls:
        with pytest.raises(Sentinel):
            call()
