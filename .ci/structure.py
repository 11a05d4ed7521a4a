#!/usr/bin/env python3
"""Checks of the workspace's shape (issue 16), run by .ci/test:

1. No production source file of sbc/ or media-plane/ is longer than MAX_LINES lines, not counting a
   trailing `#[cfg(test)] mod tests { .. }` block (tests may sit beside the code or in a tests.rs file).
2. No import cycle between sibling modules of a crate: for every module, its children (files and
   folders) form a graph with an edge X -> Y when a file under X names a path under Y
   (`use crate::..`, `crate::..` in code, `super::..`); that graph must have no cycle. A folder's mod.rs
   is the parent of its files, not their sibling, so children using their parent is not a cycle.
3. sbc-core does not depend on media-plane (the core reaches media through its own MediaControl trait).

Exit status 1 with one line per fault; prints a summary line otherwise.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 1200
CRATES = ["sbc/src", "sbc/sip/src", "sbc/core/src", "media-plane/src"]
# Folders of crates that are not part of the product's production code.
SKIP_DIRS = {"fuzz", "tests", "benches", "examples"}

faults = []

# Faults known and still open (issue 16), each named exactly as the check prints it, so that a new fault
# fails and a mended one must be taken off this list (a listed fault that no longer occurs fails too).
PENDING = set()


def rust_files(src):
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in sorted(filenames):
            if f.endswith(".rs"):
                yield os.path.join(dirpath, f)


def module_of(src, path):
    """sbc/core/src/b2bua/invite.rs -> ("b2bua", "invite"); mod.rs names its folder; lib/main: ()."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod" or (len(rel) == 1 and rel[0] in ("lib", "main")):
        rel = rel[:-1]
    return tuple(rel)


def production_lines(text):
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and i + 1 < len(lines) and lines[i + 1].startswith("mod tests"):
            return i
    return len(lines)


PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP_RE = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}")


def references(text, module, is_mod_rs):
    """The module paths a file names, as tuples from the crate root (unresolved tails allowed)."""
    # strip comments and string literals so that docs naming paths do not count
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    base_super = module[:-1] if is_mod_rs is False else module[:-1]
    out = []

    def resolve(kind, tail):
        parts = [p for p in tail.split("::") if p]
        if kind == "crate":
            return tuple(parts)
        # super:: is relative to the file's module: the parent of `module`
        here = list(base_super)
        while parts and parts[0] == "super":
            parts.pop(0)
            here = here[:-1]
        return tuple(here + parts)

    for m in PATH_RE.finditer(text):
        out.append(resolve(m.group(1), m.group(2)))
    for m in GROUP_RE.finditer(text):
        for item in m.group(3).split(","):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                out.append(resolve(m.group(1), m.group(2) + "::" + item.split("::")[0]))
    return out


def check_crate(src):
    files = list(rust_files(os.path.join(ROOT, src)))
    modules = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        rel = os.path.relpath(path, ROOT)
        n = production_lines(text)
        if n > MAX_LINES and os.path.basename(path) != "tests.rs":
            faults.append(f"{rel}: {n} lines of production code (at most {MAX_LINES})")
        mod = module_of(os.path.join(ROOT, src), path)
        modules[mod] = (rel, text, os.path.basename(path) == "mod.rs")
    known = set(modules)
    # edges between siblings: for each parent P, child a -> child b
    edges = {}
    for mod, (rel, text, is_mod_rs) in modules.items():
        if not mod:
            continue
        for ref in references(text, mod, is_mod_rs):
            # the deepest known module that is a prefix of ref
            target = None
            for k in range(len(ref), 0, -1):
                if ref[:k] in known:
                    target = ref[:k]
                    break
            if target is None:
                continue
            # the common parent, and the two children of it on each side
            common = 0
            while common < min(len(mod), len(target)) and mod[common] == target[common]:
                common += 1
            if common >= len(mod) or common >= len(target):
                continue  # ancestor/descendant: a module and its own parent or child
            parent = mod[:common]
            a, b = mod[common], target[common]
            edges.setdefault(parent, {}).setdefault(a, {}).setdefault(b, rel)
    for parent, graph in edges.items():
        for cycle in find_cycles(graph):
            where = "::".join(parent) or "crate root"
            inside = [f"{a} -> {b} ({graph[a][b]})" for a in cycle for b in graph.get(a, {}) if b in cycle]
            faults.append(f"{src}: import cycle among the children of {where}: {', '.join(inside)}")
    return len(files)


def find_cycles(graph):
    """Each elementary cycle reported once (by its strongly connected component)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def check_core_media():
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "-q", "-p", "sbc-core", "-e", "normal", "--prefix", "none"],
        cwd=ROOT, capture_output=True, text=True)
    if tree.returncode != 0:
        faults.append(f"cargo tree -p sbc-core failed: {tree.stderr.strip()[:300]}")
        return
    if any(line.startswith("media-plane ") for line in tree.stdout.splitlines()):
        faults.append("sbc-core depends on media-plane: the core must reach media through its MediaControl trait")


def main():
    n = sum(check_crate(c) for c in CRATES)
    if "--no-cargo" not in sys.argv:
        check_core_media()
    pending = [f for f in faults if f in PENDING]
    for f in pending:
        print(f"pending (issue 16): {f}")
    stale = [f for f in PENDING if f not in faults and ("--no-cargo" not in sys.argv or "sbc-core depends" not in f)]
    new = [f for f in faults if f not in PENDING]
    faults[:] = new + [f"no longer occurs, take it off PENDING: {f}" for f in stale]
    for f in faults:
        print(f, file=sys.stderr)
    if faults:
        print(f"structure: {len(faults)} fault(s)", file=sys.stderr)
        return 1
    print(f"structure: ok ({n} files; {len(pending)} fault(s) listed as pending)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
