#!/usr/bin/env python3
"""check_layers.py - the Raft core's files form a DAG, and the core is pure.

usage: check_layers.py NM SRCDIR LIBRARY.a

Builds the graph of the core's files from two sources: the calls (for each
object in the static library, the symbols it leaves undefined that another
of the core's objects defines, read with nm) and the includes (every
#include "x.h" in SRCDIR; x.h and x.c are one node). Fails if the graph has
a cycle, naming it, or if the core calls anything outside itself but the
few libc functions a pure core needs (memory, strings, formatting into a
buffer, assert): no I/O, threads, clock or randomness. Prints each file
with the files it uses, bottom first, so the layering can be read off.
"""
import os
import re
import subprocess
import sys

# What a pure core may take from libc. Sanitizer and fortify symbols are
# the compiler's, not the code's.
ALLOWED = {
    "malloc", "calloc", "realloc", "free",
    "memcpy", "memmove", "memset", "memcmp", "memchr",
    "strlen", "strcpy", "strcmp", "strncmp", "strchr",
    "snprintf", "vsnprintf", "sscanf", "__isoc99_sscanf",
    "__assert_fail", "__stack_chk_fail",
}
COMPILER_PREFIXES = ("__asan_", "__ubsan_", "__sanitizer_", "__lsan_",
                     "_GLOBAL_OFFSET_TABLE_")


def node_of(path):
    """convert.c, convert.h and convert.c.o are all the node 'convert'."""
    base = os.path.basename(path)
    for ext in (".c.o", ".o", ".c", ".h"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def read_symbols(nm, lib):
    out = subprocess.run([nm, "-A", lib], check=True, capture_output=True,
                         text=True).stdout
    defined, undefined = {}, {}
    for line in out.splitlines():
        # "lib.a:file.c.o:0000000000000000 T name" or "lib.a:file.c.o:   U name"
        m = re.match(r"^(.*):([^:]+):\s*([0-9a-fA-F]*)\s+(\S)\s+(\S+)$", line)
        if not m:
            continue
        obj, kind, name = node_of(m.group(2)), m.group(4), m.group(5)
        undefined.setdefault(obj, set())
        if kind == "U":
            undefined[obj].add(name)
        elif kind.isupper():
            defined[name] = obj
    return defined, undefined


def read_includes(src):
    edges = {}
    for f in sorted(os.listdir(src)):
        if not f.endswith((".c", ".h")):
            continue
        me = node_of(f)
        edges.setdefault(me, set())
        with open(os.path.join(src, f), encoding="utf-8") as fh:
            for inc in re.findall(r'^#include\s+"([^"]+)"', fh.read(), re.M):
                if node_of(inc) != me:
                    edges[me].add(node_of(inc))
    return edges


def find_cycle(graph):
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def layers(graph):
    """Topological order, bottom first, each with its depth."""
    depth = {}

    def d(n):
        if n not in depth:
            depth[n] = 0
            depth[n] = 1 + max((d(x) for x in graph.get(n, ())), default=-1)
        return depth[n]

    for n in graph:
        d(n)
    return sorted(graph, key=lambda n: (depth[n], n)), depth


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    nm, src, lib = sys.argv[1:]
    defined, undefined = read_symbols(nm, lib)
    calls = {}
    foreign = []
    for obj, names in undefined.items():
        calls.setdefault(obj, set())
        for name in sorted(names):
            if name in defined:
                if defined[name] != obj:
                    calls[obj].add(defined[name])
            elif name not in ALLOWED and not name.startswith(
                    COMPILER_PREFIXES):
                foreign.append("%s.c calls %s" % (obj, name))
    includes = read_includes(src)
    graph = {}
    for g in (calls, includes):
        for n, ds in g.items():
            graph.setdefault(n, set()).update(ds)
            for x in ds:
                graph.setdefault(x, set())
    ok = True
    if foreign:
        ok = False
        print("not pure: the core uses what it must not:")
        for f in foreign:
            print("  " + f)
    cycle = find_cycle(graph)
    if cycle:
        ok = False
        print("cycle between core files: " + " -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            how = []
            if b in calls.get(a, ()):
                how.append("calls")
            if b in includes.get(a, ()):
                how.append("includes")
            print("  %s %s %s" % (a, " and ".join(how), b))
    else:
        order, depth = layers(graph)
        print("core files, bottom first (level: file -> calls; includes):")
        for n in order:
            print("  %d: %s -> %s; %s" % (
                depth[n], n, " ".join(sorted(calls.get(n, ()))) or "-",
                " ".join(sorted(includes.get(n, ()))) or "-"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
