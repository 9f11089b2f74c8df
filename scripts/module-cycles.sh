#!/usr/bin/env bash
# Lists the import cycles between chatd's modules: `scripts/module-cycles.sh [DIR...]`.
#
# Each file under src/ is a module (`src/core/event.rs` is `core::event`, a `mod.rs` is its
# folder). A module depends on another when a line outside its tests names a path into it:
# `use super::request::Page`, `use crate::core::{Reply, Request}` (names re-exported by a
# `mod.rs` are followed to the file that defines them), or `crate::backends::presence_codec::encode`
# inside the code. Test code is left out (`*_tests.rs` files, and a file from its
# `#[cfg(test)]` line on): a test may import anything.
#
# With no argument it looks at every module of src/; `scripts/module-cycles.sh core` keeps only
# the modules inside src/core/ (cycles among them), `adapters/http` those inside that folder.
# `--top` looks at the top-level modules instead (`core`, `layers`, `pipeline`...): a file of one
# importing a file of another is an import between the two.
#
# A folder's `mod.rs` is its folder's face: a child importing its parent (`use super::X` from
# `src/adapters/irc/welcome.rs`) is not counted, as the parent declares its children anyway.
# It prints each group of modules that import one another round in a circle (a strongly connected
# component of the import graph), with the imports that close it, and exits 1 when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PYTHON'
import os, re, sys

ROOT = "src"

def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3]  # drop ".rs"
    parts = rel.split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return "crate"
    return "::".join(parts)

files = {}
for folder, _, names in os.walk(ROOT):
    for name in names:
        if name.endswith(".rs") and not name.endswith("_tests.rs") and name != "tests.rs":
            files[module_of(os.path.join(folder, name))] = os.path.join(folder, name)

def code_of(path):
    """The file's text before its test module, with comments removed."""
    text = open(path, encoding="utf-8").read()
    text = re.split(r"\n#\[cfg\(test\)\]", text, maxsplit=1)[0]
    return "\n".join(line.split("//")[0] for line in text.splitlines())

codes = {m: code_of(p) for m, p in files.items()}

# Names a `mod.rs` re-exports (`pub use request::{Action, Page}`): name -> defining module.
reexports = {}
for module, code in codes.items():
    for group in re.finditer(r"pub use (\w+)::(\{[^}]*\}|\w+)", code):
        source, names = group.group(1), group.group(2).strip("{}")
        for name in re.split(r"[,\s]+", names):
            if name:
                reexports[(module, name.split(" as ")[0])] = f"{module}::{source}".lstrip(":")

def resolve(parts):
    """The longest module a path `a::b::c` names, following one level of re-export."""
    for end in range(len(parts), 0, -1):
        candidate = "::".join(parts[:end])
        if candidate in files:
            rest = parts[end:]
            if rest and (candidate, rest[0]) in reexports:
                return reexports[(candidate, rest[0])]
            return candidate
    return None

def expand(prefix, body):
    """`prefix::{a, b::{c, d}}` -> [prefix::a, prefix::b::c, prefix::b::d]."""
    out, depth, item = [], 0, ""
    for ch in body + ",":
        if ch == "," and depth == 0:
            item = item.strip()
            if item:
                m = re.match(r"([\w:]*?)(?:::)?\{(.*)\}$", item, re.S)
                if m:
                    out += expand(prefix + ([m.group(1)] if m.group(1) else []), m.group(2))
                else:
                    out.append(prefix + [item.split(" as ")[0]])
            item = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        item += ch
    return [[p for part in path for p in part.split("::") if p] for path in out]

edges = {m: {} for m in files}
for module, code in codes.items():
    parent = module.rsplit("::", 1)[0] if "::" in module else "crate"
    if files[module].endswith("mod.rs"):
        parent = module  # `super` inside a mod.rs's own children is handled by the children
    paths = []
    for use in re.finditer(r"\buse\s+((?:crate|super)(?:::\w+)*)(?:::\{(.*?)\})?\s*;", code, re.S):
        head = use.group(1).split("::")
        paths += expand([head[0]], "::".join(head[1:]) + "::{" + use.group(2) + "}") if use.group(2) else [head]
    paths += [p.split("::") for p in re.findall(r"\bcrate(?:::\w+)+", code)]
    for path in paths:
        if path[0] == "super":
            up = module.rsplit("::", 1)[0] if "::" in module else ""
            path = up.split("::") + path[1:] if up else path[1:]
        elif path[0] == "crate":
            path = path[1:]
        target = resolve(path)
        if target and target != module and target in files and not module.startswith(target + "::"):
            line = code[: code.find(path[-1])].count("\n") + 1
            edges[module].setdefault(target, line)

args = sys.argv[1:]
if "--top" in args:
    args.remove("--top")
    top = lambda m: m.split("::")[0]
    collapsed = {}
    for v, targets in edges.items():
        for w, line in targets.items():
            if top(v) != top(w):
                collapsed.setdefault(top(v), {}).setdefault(top(w), (files[v], line))
    files = {top(m): "src/" + top(m) for m in files}
    edges = {m: {w: f"{where[0]}:{where[1]}" for w, where in collapsed.get(m, {}).items()} for m in files}
else:
    edges = {v: {w: f"{files[v]}:{line}" for w, line in targets.items()} for v, targets in edges.items()}
scope = [arg.strip("/").replace("/", "::") for arg in args]
def inside(module):
    return not scope or any(module == s or module.startswith(s + "::") for s in scope)

# Tarjan's strongly connected components over the modules in scope.
index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if not inside(w):
            continue
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        group = []
        while True:
            w = stack.pop(); on.discard(w); group.append(w)
            if w == v:
                break
        if len(group) > 1:
            found.append(sorted(group))

sys.setrecursionlimit(10000)
for v in sorted(files):
    if inside(v) and v not in index:
        visit(v)

for group in sorted(found):
    print(f"cycle of {len(group)} modules: {', '.join(group)}")
    for v in group:
        for w in sorted(edges[v]):
            if w in group:
                print(f"    {v} -> {w}   ({edges[v][w]})")
where = " and ".join(scope) if scope else "src/"
print(f"{len(found)} import cycle(s) among the modules of {where}")
sys.exit(1 if found else 0)
PYTHON
