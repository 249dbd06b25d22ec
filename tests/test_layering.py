"""The import graph of edge_mnist, every import parsed with `ast` (those inside functions too): no cycles, and
every import goes down (or across) the layers below, never up. Also: the public API is unchanged."""
from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path

import pytest

import edge_mnist

pytestmark = pytest.mark.device

PACKAGE = Path(edge_mnist.__file__).resolve().parent

# Lowest first. A module may import its own layer or a lower one; a prefix names a package and all its modules.
LAYERS = (
    ("core",),
    ("registry",),
    ("runtime",),
    ("folder",),
    ("data", "userdata", "gate", "config", "render", "folder.opener"),
    ("train", "quantize"),
    ("export",),
    ("bench", "check", "debug", "report", "info", "doctor", "predict", "emulate"),
    ("pipeline",),
    ("cli",),
    ("",),  # the package root: the public API, over everything
)
PUBLIC_API = ["ARCHITECTURES", "BenchConfig", "BenchResult", "Criteria", "DATASETS", "DataConfig", "Dataset",
              "EdgeMnistError", "EmulateConfig", "Emulation", "ExportConfig", "FORMATS", "Folder", "Format",
              "GateConfig", "GateFailed", "METHODS", "Manifest", "Method", "RUNTIMES", "RunConfig", "Task",
              "TrainConfig", "Verdict", "__version__", "bench", "check", "debug", "emulate", "export", "load_dataset",
              "open_folder", "open_model", "predict", "report", "run", "train"]


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package by dotted name (without 'edge_mnist.'; '' is the root): (file, is a package)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def imports(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its file (relative imports resolved; a name imported
    from a package that is itself a module counts as that module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["edge_mnist", *filter(None, name.split("."))]
                base = base if is_package else base[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" for a in node.names] + [module]
        else:
            continue
        named = {_short(t) for t in targets[:-1] if _short(t) in known} if isinstance(node, ast.ImportFrom) else set()
        # `from pkg import a, b`: the submodules it names; else the module (or package) it imports from
        found |= named or {_short(t) for t in targets if _short(t) in known}
    found.discard(name)
    return found


def _short(target: str) -> str | None:
    """'edge_mnist.core.errors' -> 'core.errors', 'edge_mnist' -> '', anything else -> None."""
    if target == "edge_mnist":
        return ""
    return target[len("edge_mnist."):] if target.startswith("edge_mnist.") else None


@functools.cache
def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (parsed once per session: the tests below only read it)."""
    mods = modules()
    return {name: imports(name, path, is_package, set(mods)) for name, (path, is_package) in mods.items()}


def layer(name: str) -> int:
    """The index in LAYERS of the module's layer (its longest matching prefix)."""
    best, rank = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".") or prefix == "") and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    assert [name for name in modules() if layer(name) is None] == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_never_go_up_a_layer():
    upward = sorted(f"{src or 'edge_mnist'} -> {dst}" for src, targets in graph().items() for dst in targets
                    if layer(dst) > layer(src))
    assert upward == []


@pytest.mark.parametrize("source, expected", [
    ("from edge_mnist.core.errors import EdgeMnistError\n", {"core.errors"}),
    ("def f():\n    from edge_mnist.cli import main\n", {"cli"}),
    ("from . import layout\n", {"folder.layout"}),
    ("from ..gate import Criteria\n", {"gate"}),
    ("from edge_mnist.folder import layout, verify\n", {"folder.layout", "folder.verify"}),
    ("import edge_mnist.cli\n", {"cli"}),
])
def test_imports_are_found_inside_functions_and_relative(tmp_path, source, expected):
    path = tmp_path / "records.py"
    path.write_text(source)
    assert imports("folder.records", path, False, set(modules())) == expected


def test_the_public_api_is_unchanged():
    assert sorted(edge_mnist.__all__) == sorted(PUBLIC_API)
    assert all(hasattr(edge_mnist, name) for name in PUBLIC_API)


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_imports_without_its_heavy_dependencies(name):
    """Every module imports in the default loop (TensorFlow, onnx and tf2onnx are imported inside the
    functions that need them, so this holds on the device install too)."""
    importlib.import_module(f"edge_mnist.{name}" if name else "edge_mnist")


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_name_a_module_exports_exists(name):
    module = importlib.import_module(f"edge_mnist.{name}" if name else "edge_mnist")
    assert [n for n in getattr(module, "__all__", []) if not hasattr(module, n)] == []
