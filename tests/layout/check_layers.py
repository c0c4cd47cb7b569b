#!/usr/bin/env python3
"""check_layers.py - the layering rules of docs/architecture.md, checked.

The modules are folders (store/kv, store, raft/core, raft/peer, raft/node,
raft/http, raft/tcp, fs) and each may use only the modules below it. This script
reads the sources and, given the built static libraries, their symbol
tables, and fails (exit 1, one line per violation) when:

  1. a file includes a header of a module its own module may not use, or
     another module's private header (*_int.h, *_impl.h and the store's
     map.h, log.h, db.h, hardstate.h) - a module's own tests may;
  2. a raft/core file includes anything but its own headers and the libc
     headers listed in CORE_LIBC (no I/O, threads or clock in the core);
  3. the core library needs a symbol outside CORE_SYMBOLS (so it links
     with nothing but libc, and calls no I/O, time or randomness);
  4. two source files depend on each other in a loop, through includes
     (header -> header) or calls (an object using a symbol another object
     of the project defines).

  check_layers.py SRCROOT [MODULE=LIB.a ...]      everything
  check_layers.py --core-includes STAMP SRCROOT   rule 2 only, then write
                                                  STAMP (a build step)
"""
import os
import re
import subprocess
import sys

# module -> folder (relative to the source root)
MODULES = {
    "kv": "store/kv",
    "store": "store",
    "core": "raft/core",
    "peer": "raft/peer",
    "node": "raft/node",
    "http": "raft/http",
    "tcp": "raft/tcp",
    "fs": "fs",
}
# What each module (and each program) may include or call.
ALLOWED = {
    "kv": set(),
    "store": {"kv"},
    "core": set(),
    "peer": {"core", "kv"},
    "node": {"store", "peer", "core", "kv"},
    "http": {"node", "peer", "store", "core", "kv"},
    # the byte protocol: the node's public header (and the store's reads
    # it hands out) only, no peer or core: it is a client of the node
    "tcp": {"node", "store", "kv"},
    "fs": {"node", "store", "core", "kv"},
    # the programs in fs/: kvfs wires node, listener and mount together
    "prog:fs/main.c": {"fs", "http", "tcp", "node", "peer", "store", "core",
                       "kv"},
    "prog:fs/kvfsctl.c": {"peer", "kv"},
}
PRIVATE = re.compile(r"(_int|_impl)\.h$")
STORE_PRIVATE = {"map.h", "map_impl.h", "log.h", "db.h", "hardstate.h"}
CORE_LIBC = {
    "assert.h", "errno.h", "inttypes.h", "limits.h", "stdarg.h",
    "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h", "string.h",
}
# libc functions the core may call: memory, strings, formatting into a
# buffer, parsing numbers. Nothing that does I/O or reads a clock.
CORE_SYMBOLS = {
    "malloc", "calloc", "realloc", "free", "memcpy", "memmove", "memset",
    "memcmp", "memchr", "strlen", "strnlen", "strcmp", "strncmp", "strchr",
    "strrchr", "strcpy", "strncpy", "snprintf", "vsnprintf", "strtoull",
    "strtoul", "strtoll", "strtol", "__assert_fail", "__stack_chk_fail",
    "__isoc23_strtoull", "__isoc23_strtoul", "__isoc23_strtoll",
    "__isoc23_strtol", "__memcpy_chk", "__memset_chk", "__snprintf_chk",
    "__vsnprintf_chk", "__strcpy_chk", "__memmove_chk", "sscanf",
    "__isoc99_sscanf", "__isoc23_sscanf",
}
SANITIZER_PREFIXES = ("__asan_", "__ubsan_", "__sanitizer_", "__lsan_",
                      "__gcov_", "__llvm_", "__tsan_")
# Symbols the compiler and linker make, not calls (a debug build's
# position-independent code refers to the GOT by name).
LINKER_SYMBOLS = {"_GLOBAL_OFFSET_TABLE_", "__dso_handle"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def module_of(rel):
    """(module, is_test) of a path relative to the root, or (None, _)."""
    test = rel.startswith("tests/")
    if rel.startswith("tests/lib/"):
        return "lib", True  # the tests' fixtures: they may use anything
    path = rel[len("tests/"):] if test else rel
    if not test and rel in ("fs/main.c", "fs/kvfsctl.c"):
        return "prog:" + rel, False
    if not test and rel in ("fs/cli.c", "fs/cli.h"):
        return "prog:fs/main.c", False  # kvfs's command line, main's part
    if not test and re.match(r"fs/kvfsctl_\w+\.[ch]$|fs/kvfsctl\.h$", rel):
        return "prog:fs/kvfsctl.c", False  # the client's other files
    best = None
    for mod, folder in MODULES.items():
        if path == folder or path.startswith(folder + "/"):
            if best is None or len(folder) > len(MODULES[best]):
                best = mod
    return best, test


def sources(root):
    out = []
    for top in ("store", "raft", "fs", "tests"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def header_index(files):
    """header basename -> [paths] (project headers only, not tests')."""
    idx = {}
    for f in files:
        if f.endswith(".h") and not f.startswith("tests/"):
            idx.setdefault(os.path.basename(f), []).append(f)
    return idx


def includes(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8",
              errors="replace") as fh:
        return INCLUDE.findall(fh.read())


def resolve(rel, name, idx, files):
    """The project file a quoted include names, or None (a system one)."""
    here = os.path.normpath(os.path.join(os.path.dirname(rel), name))
    if here in files:
        return here
    cands = idx.get(os.path.basename(name), [])
    return cands[0] if len(cands) == 1 else (cands or None)


def check_includes(root, files, errors, core_only=False):
    fileset = set(files)
    idx = header_index(files)
    for name, paths in idx.items():
        if len(paths) > 1 and not core_only:
            errors.append("header name %s is ambiguous: %s"
                          % (name, ", ".join(paths)))
    edges = {}
    for rel in files:
        mod, test = module_of(rel)
        if core_only and mod != "core":
            continue
        if mod == "lib":
            continue
        for kind, name in includes(root, rel):
            if mod == "core" and not test:
                if kind == "<" and name not in CORE_LIBC:
                    errors.append("%s: the core includes <%s>: only libc "
                                  "headers without I/O, threads or clocks "
                                  "(%s)" % (rel, name,
                                            ", ".join(sorted(CORE_LIBC))))
                    continue
            if kind == "<":
                continue
            target = resolve(rel, name, idx, fileset)
            if mod == "core" and not test and (
                    not isinstance(target, str)
                    or not target.startswith("raft/core/")):
                errors.append("%s: the core includes \"%s\": it may include "
                              "only raft/core headers" % (rel, name))
                continue
            if target is None:
                continue  # not a header of ours (generated, or system)
            if isinstance(target, list):
                errors.append("%s: \"%s\" is ambiguous" % (rel, name))
                continue
            edges.setdefault(rel, set()).add(target)
            tmod, _ = module_of(target)
            if tmod is None or tmod.startswith("prog:"):
                continue
            own = mod == tmod or (mod and mod.startswith("prog:")
                                  and tmod == "fs")
            if mod == "core" and not test and tmod != "core":
                errors.append("%s: the core includes %s (module %s): it "
                              "may include only raft/core headers"
                              % (rel, target, tmod))
                continue
            base = os.path.basename(target)
            private = PRIVATE.search(base) or (
                tmod == "store" and base in STORE_PRIVATE)
            if private and not own:
                errors.append("%s: includes %s, a private header of module "
                              "%s" % (rel, target, tmod))
                continue
            if own or tmod == "lib":
                continue
            allowed = ALLOWED.get(mod, set())
            if test:
                # a module's tests may use what the module may, and the
                # module itself
                allowed = allowed | {mod}
            if tmod not in allowed:
                errors.append("%s: includes %s: module %s may not depend "
                              "on module %s" % (rel, target, mod, tmod))
    return edges


def nm(lib, flags):
    out = subprocess.run(["nm", "-A"] + flags + [lib], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        # "lib.a:obj.c.o:                 U sym" or "... T sym"
        m = re.match(r"^[^:]+:([^:]+\.o):\s*(?:[0-9a-f]+\s+)?(\w)\s+(\S+)$",
                     line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3)))
    return rows


def obj_source(mod, obj):
    # meson names objects after their source ("store.c.o"), and its thin
    # archives name members by path
    return MODULES[mod] + "/" + os.path.basename(obj)[:-2]


def check_symbols(libs, errors):
    defined = {}  # symbol -> source
    undefined = []  # (source, symbol)
    for mod, lib in libs:
        for obj, kind, sym in nm(lib, []):
            src = obj_source(mod, obj)
            if kind == "U":
                undefined.append((src, sym))
            elif kind in "TDBRVWC" or kind in "tdbr":
                if kind.isupper():
                    defined[sym] = src
    edges = {}
    for src, sym in undefined:
        mod, _ = module_of(src)
        if sym in defined:
            tgt = defined[sym]
            if tgt != src:
                edges.setdefault(src, set()).add(tgt)
                tmod, _ = module_of(tgt)
                if tmod != mod and tmod not in ALLOWED.get(mod, set()):
                    errors.append("%s calls %s (%s): module %s may not "
                                  "depend on module %s"
                                  % (src, sym, tgt, mod, tmod))
        elif mod == "core":
            if (sym.startswith(SANITIZER_PREFIXES) or sym in CORE_SYMBOLS
                    or sym in LINKER_SYMBOLS):
                continue
            errors.append("%s needs %s: the core links with libc only and "
                          "calls no I/O, clock or threads (CORE_SYMBOLS in "
                          "tests/layout/check_layers.py)" % (src, sym))
    return edges


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
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

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(argv):
    errors = []
    if len(argv) >= 3 and argv[0] == "--core-includes":
        stamp, root = argv[1], argv[2]
        check_includes(root, sources(root), errors, core_only=True)
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 1
        with open(stamp, "w") as fh:
            fh.write("/* raft/core: includes checked */\n")
        return 0
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[0]
    libs = [tuple(a.split("=", 1)) for a in argv[1:]]
    files = [f for f in sources(root)]
    inc = check_includes(root, files, errors)
    inc = {k: v for k, v in inc.items() if not k.startswith("tests/")}
    for comp in cycles(inc):
        errors.append("include loop: " + " -> ".join(comp))
    calls = check_symbols(libs, errors) if libs else {}
    for comp in cycles(calls):
        errors.append("call loop between files: " + ", ".join(comp))
    if errors:
        print("\n".join(errors))
        print("%d layering violation(s); the rules are in "
              "docs/architecture.md" % len(errors))
        return 1
    print("layering ok: %d files, %d libraries" % (len(files), len(libs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
