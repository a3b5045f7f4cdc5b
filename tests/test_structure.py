"""The package's shape: no import circles, one home for the training step and the stacking."""
import ast
from pathlib import Path

import nextchar

PACKAGE = Path(nextchar.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every nextchar module ``name`` imports, at the top or inside a function (lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("nextchar"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.startswith("nextchar"):
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import kernels`
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path, name) if m in modules and m != name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a circle, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_one_that_imports_it_back():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_fused_imports_nothing_from_the_model():
    graph = import_graph()
    for name in ("nextchar.fused.core", "nextchar.fused.compiled", "nextchar.fused.kernels"):
        assert "nextchar.model" not in graph[name], name


def test_the_training_step_and_the_stacking_are_written_once():
    """Only step.py calls .backward() in the training code (the parity checks' own backward passes aside);
    only the recurrent core loops over the layers' cells."""
    backward = {p.name for p in PACKAGE.rglob("*.py") if ".backward()" in p.read_text()}
    assert backward <= {"step.py", "verify.py", "memory.py"}, backward
    assert "loss.backward()" not in (PACKAGE / "claims" / "memory.py").read_text()
    stacking = {p.name for p in PACKAGE.rglob("*.py") if "stack_states(" in p.read_text()}
    assert stacking == {"cells.py", "model.py"}, stacking
