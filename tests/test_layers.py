"""The package's folders are its layers: a module imports only from its own folder or a lower layer,
and no modules import each other in a circle (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "lib" / "sweatlab"
# Lowest first. A folder may import its own modules and any folder of a lower rank; folders of equal
# rank are independent of each other. sweatlab/__main__.py sits on top of everything.
LAYERS = {
    "measure": 0,  # timing, hardware, FLOPs, roofline, energy, records, peak, asm, fresh processes
    "topics": 1,  # what the labs study: kernels and models
    "course": 1,  # solutions -> labs, the sync checks, the decks
    "kit": 2,  # what a lab's setup cell hands the notebook: check, stand-ins, meter, figures
    "labs": 3,  # one package per lab: its checks, stand-ins, record
    "grading": 4,  # the grader and its sandboxed child
    "tools": 5,  # the commands: cli, doctor, profile, progress, class report, wheelhouse
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(path: Path, known: set[str], mod: str | None = None) -> set[str]:
    """The sweatlab modules ``path`` imports, wherever the import stands (lazy ones included)."""
    mod = mod or module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            # `from pkg import module` uses the module; `from pkg import name` uses pkg itself
            names = subs + ([base] if any(n not in known for n in subs) else [])
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name.startswith("sweatlab"):
                found.add(name)
    found.discard(mod)
    return found


def layer_of(mod: str) -> tuple[str, int]:
    parts = mod.split(".")
    if len(parts) == 1:
        return "sweatlab", -1
    if parts[1] == "__main__":
        return "__main__", 99
    if parts[1] not in LAYERS:
        raise AssertionError(f"{mod}: a module outside the layer folders {sorted(LAYERS)}; move it into one "
                             "(or name its folder in LAYERS with a rank)")
    return parts[1], LAYERS[parts[1]]


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(p, known) for m, p in mods.items()}


def test_every_module_sits_in_a_layer_folder():
    for mod in modules():
        layer_of(mod)


def test_no_import_from_a_lower_layer_to_a_higher_or_a_sibling_one():
    bad = []
    for mod, deps in graph().items():
        folder, rank = layer_of(mod)
        for dep in deps:
            dfolder, drank = layer_of(dep)
            if dfolder == "sweatlab" or dfolder == folder:
                continue
            if drank >= rank:
                bad.append(f"{mod} ({folder}, layer {rank}) imports {dep} ({dfolder}, layer {drank})")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_circle():
    cycle = find_cycle(graph())
    assert cycle is None, "modules import each other in a circle: " + " -> ".join(cycle)


def test_the_walk_finds_a_planted_circle_and_an_upward_import(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from ..tools import cli\n    import sweatlab.kit.checks as c\n")
    known = {"sweatlab.tools", "sweatlab.tools.cli", "sweatlab.kit", "sweatlab.kit.checks"}
    deps = imports_of(src, known, mod="sweatlab.measure.x")
    assert deps == {"sweatlab.tools.cli", "sweatlab.kit.checks"}
    assert layer_of("sweatlab.measure.x")[1] < layer_of("sweatlab.tools.cli")[1]


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_each_layer_folder_exists(folder):
    assert (PKG / folder / "__init__.py").is_file()
