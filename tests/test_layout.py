"""The package's architecture, checked: no import circles (module-level or inside functions)."""

import ast
import os

from conftest import ROOT

PACKAGE = "lightning_dreamer"


def import_graph():
    sources = {}
    for folder, _, files in os.walk(os.path.join(ROOT, PACKAGE)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                sources[os.path.relpath(path[:-3], ROOT).replace(os.sep, ".").removesuffix(".__init__")] = path
    graph = {}
    for module, path in sources.items():
        deps = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
                # "from pkg import sub" imports the submodule pkg.sub when there is one
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(sources)
                deps |= subs or {node.module}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith(PACKAGE)}
        graph[module] = deps
    return graph


def test_no_import_circles():
    graph = import_graph()

    def resolve(name):  # "pkg.mod.Class" style names resolve to the module that holds them
        while name not in graph and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    cycles, done = [], set()

    def visit(module, path):
        for dep in sorted(resolve(d) for d in graph[module]):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done and dep in graph:
                visit(dep, path + [dep])
        done.add(module)

    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)
    # The registry imports algorithms by name at run time, never the other way round.
    assert not any(resolve(d) == f"{PACKAGE}.registry" for d in graph[f"{PACKAGE}.config"])
