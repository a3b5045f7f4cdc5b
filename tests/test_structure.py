"""The package's shape: no import circles, one home for the training step and the stacking."""
import ast
import subprocess
from pathlib import Path

import pytest

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


def calls(source: str, name: str) -> list[str]:
    """The functions (``outer.inner``, or ``<module>``) in ``source`` that call ``name(...)`` or
    ``something.name(...)``: read from the syntax tree, so comments and strings never count."""
    found = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, child.name if where == "<module>" else f"{where}.{child.name}")
                continue
            if isinstance(child, ast.Call):
                func = child.func
                if (isinstance(func, ast.Attribute) and func.attr == name) or (
                        isinstance(func, ast.Name) and func.id == name):
                    found.append(where)
            visit(child, where)

    visit(ast.parse(source), "<module>")
    return found


def callers(name: str) -> set[tuple[str, str]]:
    """(module path inside nextchar, function) of every call to ``name`` in the package."""
    return {(p.relative_to(PACKAGE).as_posix(), where) for p in PACKAGE.rglob("*.py")
            for where in calls(p.read_text(), name)}


def test_the_call_finder_reads_calls_not_text():
    source = ("# loss.backward() in a comment\ndoc = 'loss.backward()'\n"
              "def step(loss):\n    loss.backward()\nclass A:\n    def f(self):\n        stack_states([])\n")
    assert calls(source, "backward") == ["step"]
    assert calls(source, "stack_states") == ["A.f"]


def test_the_training_step_and_the_stacking_are_written_once():
    """Only the training step calls .backward() (the parity report's and the gradient study's own backward
    passes aside, which train nothing); only the recurrent core stacks the layers' states (and the influence,
    which starts its windows from traced states, and differentiates with autograd.grad: no .backward)."""
    assert callers("backward") == {("step.py", "train_step"), ("exam/verify.py", "verify_family"),
                                   ("exam/claims/memory.py", "gradient_ratios")}
    assert callers("stack_states") == {("model.py", "RecurrentCore.forward"),
                                       ("inspect/influence.py", "_window_gradients")}


def test_at_most_18_modules_stand_at_the_top_of_the_package():
    """Besides the package's own __init__ and __main__: the model core, flat; every other concern is a folder."""
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= 18, top


ROOT = PACKAGE.parents[1]


def readme_tree() -> list[str]:
    """The paths the README's annotated tree names under src/nextchar/ (folders end with /): one entry a
    line, two spaces of indent per level."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("```\nsrc/nextchar/\n") + 4:]
    block = block[:block.index("```")]
    paths, folders = [], []
    for line in block.splitlines()[1:]:
        if not line.startswith("  "):
            break  # the package's tree ends where the next top-level entry (tests/, bench/, ...) starts
        depth = (len(line) - len(line.lstrip())) // 2 - 1
        name = line.split()[0]
        folders = folders[:depth]
        paths.append("".join(folders) + name)
        if name.endswith("/"):
            folders.append(name)
    return paths


def test_the_readme_tree_finder_reads_nested_folders():
    assert readme_tree()[0] == "__init__.py"
    assert "exam/claims/" in readme_tree() and "exam/claims/memory.py" in readme_tree()


def test_the_readme_tree_equals_git_ls_files_src():
    """The README's annotated tree names exactly the files git tracks under src/nextchar, each once."""
    listed = subprocess.run(["git", "ls-files", "src/nextchar"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = {line.removeprefix("src/nextchar/") for line in listed.stdout.splitlines()}
    named = [p for p in readme_tree() if not p.endswith("/")]
    assert len(named) == len(set(named)), "the README's tree names a file twice"
    assert set(named) == files, {"missing from the README": sorted(files - set(named)),
                                 "in the README, not tracked": sorted(set(named) - files)}


def test_only_the_commands_import_click():
    """Printing and flags belong to cli/; the library under it never imports click."""
    importers = {name for name, path in ((n, p) for n, p in _modules().items())
                 if any(m == "click" or m.startswith("click.") for m in _all_imports(path))}
    assert importers and all(name.startswith("nextchar.cli") for name in importers), sorted(importers)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _all_imports(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (absolute names; relative ones are nextchar's)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found


def test_every_import_the_readme_shows_works():
    """`from nextchar... import ...` lines in the README's code blocks name what the package exports."""
    import importlib

    text = (ROOT / "README.md").read_text()
    lines = [line.strip() for block in text.split("```python")[1:] for line in block.split("```")[0].splitlines()]
    imports = [line for line in lines if line.startswith("from nextchar")]
    assert imports
    for line in imports:
        module, _, names = line.removeprefix("from ").partition(" import ")
        loaded = importlib.import_module(module)
        for name in names.split(","):
            assert hasattr(loaded, name.strip()), f"{line}: {name.strip()}"
