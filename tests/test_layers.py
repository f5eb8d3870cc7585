"""The parts import one way only, and Blender's side can never reach torch, diffusers, OpenCV or mediapipe.

Every import counts, including those inside functions (a lazy import is still a dependency). The
rules are the picture at the top of docs/architecture.md; change both together.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

# part -> the project parts it may import (its own always allowed)
ALLOWED_PARTS: dict[str, set[str]] = {
    "bump_contracts": set(),
    "bump_client": {"bump_contracts"},
    "character_library": {"bump_contracts", "profile_rig.imaging"},
    "profile_rig.imaging": {"bump_contracts"},
    "profile_rig.core": {"bump_contracts", "profile_rig.imaging"},
    "profile_rig.blender": {"bump_contracts", "profile_rig.core", "profile_rig.imaging"},
    "headless_renderer": {"bump_contracts", "bump_client", "character_library", "profile_rig.core",
                          "profile_rig.imaging", "profile_rig.blender"},
    "addon": {"bump_contracts", "bump_client", "character_library", "profile_rig.core", "profile_rig.imaging",
              "profile_rig.blender"},
    "bump_backend": {"bump_contracts", "character_library", "profile_rig.core", "profile_rig.imaging"},
}
# part -> third-party modules it may import (None: any)
ALLOWED_THIRD_PARTY: dict[str, set[str] | None] = {
    "bump_contracts": set(),
    "bump_client": {"requests"},
    "character_library": {"numpy"},
    "profile_rig.imaging": {"numpy"},
    "profile_rig.core": {"numpy"},
    "profile_rig.blender": {"numpy", "bpy", "bpy_extras", "mathutils"},
    "headless_renderer": {"numpy", "bpy", "ray", "psutil"},
    "addon": {"numpy", "bpy", "bpy_extras", "mathutils", "addon_utils", "requests"},
    "bump_backend": None,
}
BLENDER_SIDE = ("bump_contracts", "bump_client", "character_library", "profile_rig", "addon", "headless_renderer")
GPU_SIDE_MODULES = {"torch", "diffusers", "transformers", "cv2", "mediapipe", "onnxruntime", "PIL", "bump_backend"}
TOP_PARTS = {"bump_contracts", "bump_client", "character_library", "profile_rig", "headless_renderer", "addon",
             "bump_backend"}


def part_of_module(module: str) -> str | None:
    top = module.split(".")[0]
    if top not in TOP_PARTS:
        return None
    if top == "profile_rig":
        second = module.split(".")[1] if "." in module else ""
        return f"profile_rig.{second}" if second in ("core", "imaging", "blender") else "profile_rig"
    return top


def module_of_path(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def product_files() -> list[Path]:
    return sorted(p for top in TOP_PARTS for p in (REPO / top).rglob("*.py"))


@cache
def imports_of(path: Path) -> tuple[tuple[str, int], ...]:
    """Every absolute module a file imports (top level and inside functions), with its line."""
    found = []
    package = module_of_path(path) if path.name == "__init__.py" else module_of_path(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            # "from package import module" names a submodule too
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names
                      if (REPO / Path(*f"{module}.{alias.name}".split("."))).with_suffix(".py").is_file()]
    return tuple(found)


def test_every_product_file_belongs_to_a_part():
    loose = [p for p in product_files() if part_of_module(module_of_path(p)) not in ALLOWED_PARTS
             and module_of_path(p) != "profile_rig"]
    assert not loose, f"files outside the named parts (put them in one): {loose}"


@pytest.mark.parametrize("part", sorted(ALLOWED_PARTS))
def test_each_part_imports_only_what_its_rule_allows(part):
    problems = []
    for path in product_files():
        if part_of_module(module_of_path(path)) != part:
            continue
        for module, line in imports_of(path):
            top = module.split(".")[0]
            target = part_of_module(module)
            where = f"{path.relative_to(REPO)}:{line} imports {module}"
            if target is not None:
                if target != part and target not in ALLOWED_PARTS[part] and module != "profile_rig":
                    problems.append(where)
            elif top not in STDLIB:
                allowed = ALLOWED_THIRD_PARTY[part]
                if allowed is not None and top not in allowed:
                    problems.append(where)
    assert not problems, f"{part} may import {sorted(ALLOWED_PARTS[part])} and {ALLOWED_THIRD_PARTY[part]}:\n" + \
        "\n".join(problems)


def test_the_core_of_profile_rig_never_needs_blender():
    for path in product_files():
        if part_of_module(module_of_path(path)) in ("profile_rig.core", "profile_rig.imaging"):
            assert not {m.split(".")[0] for m, _ in imports_of(path)} & {"bpy", "bpy_extras", "mathutils"}, path


def _reachable(start: list[Path]) -> dict[str, str]:
    """Every module reachable from ``start`` through project imports -> the chain that reaches it."""
    index = {module_of_path(p): p for p in product_files()}
    seen: dict[str, str] = {}
    todo = [(module_of_path(p), module_of_path(p)) for p in start]
    while todo:
        module, chain = todo.pop()
        if module in seen:
            continue
        seen[module] = chain
        path = index.get(module)
        if path is None:
            continue
        for imported, _ in imports_of(path):
            names = [imported]
            parts = imported.split(".")
            names += [".".join(parts[:i]) for i in range(1, len(parts))]  # a package's __init__ runs too
            for name in names:
                if name not in seen:
                    todo.append((name, f"{chain} -> {name}"))
    return seen


def test_blender_side_cannot_reach_the_gpu_side():
    start = [p for p in product_files() if module_of_path(p).split(".")[0] in BLENDER_SIDE]
    reached = _reachable(start)
    bad = {m: chain for m, chain in reached.items() if m.split(".")[0] in GPU_SIDE_MODULES}
    assert not bad, "Blender's side reaches the GPU side:\n" + "\n".join(sorted(bad.values())[:20])


def test_blender_side_imports_with_the_gpu_side_blocked():
    """The same promise at run time: every Blender-side module imports with torch & co. unavailable."""
    modules = sorted(module_of_path(p) for p in product_files()
                     if module_of_path(p).split(".")[0] in BLENDER_SIDE and p.name != "__main__.py"
                     and p.name != "blender_entry.py")
    code = (
        "import importlib, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {sorted(GPU_SIDE_MODULES)!r}:\n"
        "            raise ImportError('blocked on the Blender side: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('ok', len(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")
