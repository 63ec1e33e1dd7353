#!/usr/bin/env python3
"""The module graph of src/ (which module uses which), its import cycles, and the rooms' one rule.

    python3 scripts/rooms.py            # check: exit 1 on a cycle or a core module naming an edge
    python3 scripts/rooms.py --graph    # also print every module and what it uses

A module is a file (`src/http/routes.rs` is `http::routes`, `src/model/mod.rs` is `model`; the
binary's `main.rs` and `config.rs` are `main` and `main::config`). Module A uses module B when
A's code (comments and `#[cfg(test)]` modules left out) names a path that resolves into B:
`crate::…`, `super::…`, `self::…`, `densenet_lambda::…` from the binary, in `use` trees and in
expressions alike. `mod b;` alone is not a use. A path resolves to the deepest module it names,
so `super::ImageError` in `preprocess/png.rs` is a use of `preprocess` (the parent) while
`super::error::ImageError` is a use of `preprocess::error`.

The rule (README, "Layout"): the core (`classifier`, `labels`, `model`, `preprocess`) never names
`http`, `weights`, `lambda` or `serve`, nor an HTTP, Lambda or network crate.
Standard library only.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
CORE = ("classifier", "labels", "model", "preprocess")
EDGES = ("http", "weights", "lambda", "serve")
EDGE_CRATES = ("axum", "hyper", "lambda_http", "lambda_runtime", "multer", "reqwest", "tower",
               "tower_http", "ureq", "utoipa", "utoipa_axum")


def binary_modules():
    """The files that belong to the binary: main.rs and the modules it declares itself."""
    main = open(os.path.join(SRC, "main.rs"), encoding="utf-8").read()
    return {"main.rs": "main", **{f"{m}.rs": f"main::{m}"
                                   for m in re.findall(r"^mod (\w+);", main, flags=re.M)}}


def module_of(path):
    rel = os.path.relpath(path, SRC).replace(os.sep, "/")
    binary = binary_modules()
    if rel in binary:
        return binary[rel]
    if rel == "lib.rs":
        return "crate"
    parts = rel[:-3].split("/")
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts)


def strip(text):
    """The code without comments, string and char literals, and `#[cfg(test)]` modules."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.find("*/", i + 2) + 2 or n
        elif re.match(r'b?r#*"', text[i:i + 8]) and (i == 0 or not text[i - 1].isalnum()):
            m = re.match(r'b?r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            out.append('""')
            i = end + 1 + len(m.group(1))
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            out.append("' '")
            i += m.end()
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (renames and globs dropped)."""
    tree = re.sub(r"\s+as\s+\w+", "", tree).replace(" ", "").replace("\n", "")
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree.rstrip(":").removesuffix("::*")]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    out = []
    for p in filter(None, parts):
        out += [prefix + q if q != "self" else prefix.rstrip(":") for q in expand(p)]
    return out


def paths(code):
    """Every path the code names that starts at a module: `crate::`, `super::`, `self::`,
    `densenet_lambda::`, or one of the module's own submodules (`png::open` in
    `preprocess/mod.rs`, which names it `self::png::open`)."""
    children = re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code, flags=re.M)
    roots = ["crate", "super", "self", "densenet_lambda"] + children
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        found += expand(m.group(1))
    code = re.sub(r"\buse\s+[^;]+;", "", code)
    found += re.findall(rf"(?<![\w:])(?:{'|'.join(roots)})(?:::\w+)+", code)
    return [f"self::{p}" if p.split("::")[0] in children else p for p in found]


def resolve(module, path, modules):
    parts = path.split("::")
    base = module.split("::") if module not in ("crate",) else []
    if module.startswith("main"):
        if parts[0] == "densenet_lambda":
            parts = parts[1:]
            base = []
        elif parts[0] == "crate":
            parts, base = parts[1:], ["main"]
        else:
            base = module.split("::")
    elif parts[0] == "crate":
        parts, base = parts[1:], []
    elif parts[0] not in ("super", "self"):
        return None
    if parts and parts[0] in ("super", "self"):
        # a file's `self` is its own module; `super` its parent (mod.rs is the folder's module).
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    full = base + parts
    for n in range(len(full), -1, -1):
        name = "::".join(full[:n]) if n else "crate"
        if name in modules:
            return name
    return None


def main():
    show = "--graph" in sys.argv
    files = {}
    for d, _, names in os.walk(SRC):
        for n in names:
            if n.endswith(".rs"):
                files[module_of(os.path.join(d, n))] = os.path.join(d, n)
    modules = set(files)
    graph, crates = {}, {}
    for module, path in sorted(files.items()):
        code = strip(open(path, encoding="utf-8").read())
        uses = set()
        for p in paths(code):
            target = resolve(module, p, modules)
            if target and target != module and target != "crate":
                uses.add(target)
        graph[module] = uses
        crates[module] = {c for c in EDGE_CRATES if re.search(rf"\b{c}::", code)}

    failed = False
    # Cycles: strongly connected components of more than one module (Tarjan).
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    for scc in sccs:
        failed = True
        print("import cycle: " + " <-> ".join(scc))

    for module, uses in sorted(graph.items()):
        if module.split("::")[0] not in CORE:
            continue
        bad = sorted(u for u in uses if u.split("::")[0] in EDGES)
        bad += sorted(f"crate {c}" for c in crates[module])
        if bad:
            failed = True
            print(f"core module {module} names {', '.join(bad)}")

    if show:
        for module, uses in sorted(graph.items()):
            print(f"{module:24} -> {', '.join(sorted(uses)) or '-'}")
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} uses, "
          f"{len(sccs)} cycles" + ("" if failed else "; the core names no edge"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
