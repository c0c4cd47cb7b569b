"""A linearizability checker for histories of a key-value register store.

A history is JSON Lines, one operation per line (the format is in
docs/testing-notes.md and in load_history below). Keys are independent
registers, so each key is checked on its own (P-compositionality). A key is
checked by a Wing & Gong search in the form of Lowe's "just-in-time
linearization" as Porcupine does it: the call and return events sit in a
doubly linked list in time order, an operation is linearized by lifting its
two events out, and the search backtracks when it reaches the return of an
operation it has not linearized; states already seen as (set of linearized
operations as a bitset, register value) are cached and never explored twice.
Operations whose outcome is unknown (ok = null) have their return at
infinity and may also never take effect, so the search succeeds as soon as
every definite operation is linearized. Used by the fault-injection e2e test;
its own tests are in test_linearizability_checker.py."""
import argparse
import bisect
import json
import math
import sys
import time

OPS = ("read", "write", "cas", "delete")

# error values an ok=false operation may carry to say it ran and failed on
# the register's value (otherwise a failure has no effect and is ignored)
ERR_PRECONDITION = "precondition"  # cas: the value was not `expected`
ERR_ABSENT = "absent"  # delete: the key was absent


class HistoryError(ValueError):
    """A malformed history: the message names the line and the field."""


class Inconclusive(RuntimeError):
    """The search went past its step budget without an answer."""


class Op:
    """One operation of the history. `ok` is True, False or None (unknown);
    `complete` is math.inf when the outcome is unknown."""

    __slots__ = ("line", "client", "key", "op", "value", "expected", "result",
                 "ok", "error", "invoke", "complete")

    def __init__(self, line, client, key, op, value=None, expected=None,
                 result=None, ok=True, error=None, invoke=0.0, complete=0.0):
        self.line = line
        self.client = client
        self.key = key
        self.op = op
        self.value = value
        self.expected = expected
        self.result = result
        self.ok = ok
        self.error = error
        self.invoke = invoke
        self.complete = (math.inf if ok is None or complete is None
                         else complete)

    def describe(self):
        """One human-readable line: where it is, who did what, when."""
        if self.op == "read":
            what = "read -> %s" % show(self.result)
        elif self.op == "write":
            what = "write %s" % show(self.value)
        elif self.op == "delete":
            what = "delete"
        else:
            what = "cas %s -> %s" % (show(self.expected), show(self.value))
        if self.ok is None:
            outcome = "outcome unknown"
        elif self.ok:
            outcome = "ok"
        else:
            outcome = "failed" + (" (%s)" % self.error if self.error else "")
        end = "?" if self.complete == math.inf else "%g" % self.complete
        return "line %s: client %s %s, %s  [invoke %g, complete %s]" % (
            self.line, self.client, what, outcome, self.invoke, end)


def show(v, limit=40):
    """A register value for messages: quoted, long ones cut short."""
    if v is None:
        return "absent"
    s = json.dumps(v)
    return s if len(s) <= limit else s[:limit - 5] + '..."'


def _number(rec, field, line, allow_null=False):
    v = rec.get(field)
    if v is None and allow_null:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise HistoryError("line %s: %r must be a number, got %r" %
                           (line, field, v))
    return float(v)


def _string(rec, field, line, allow_null):
    v = rec.get(field)
    if v is None and allow_null:
        return None
    if not isinstance(v, str):
        raise HistoryError("line %s: %r must be a string%s, got %r" %
                           (line, field, " or null" if allow_null else "", v))
    return v


def op_from_record(rec, line):
    """Build an Op from one decoded JSON object; HistoryError if it is
    malformed. Fields: client, key, op, value (write, cas), expected (cas,
    null = absent), result (read, null = absent), ok (true/false/null),
    error (optional, on ok=false: "precondition" for a cas that saw another
    value, "absent" for a delete of an absent key), invoke, complete (null
    allowed when ok is null)."""
    if not isinstance(rec, dict):
        raise HistoryError("line %s: not a JSON object" % line)
    kind = rec.get("op")
    if kind not in OPS:
        raise HistoryError("line %s: 'op' must be one of %s, got %r" %
                           (line, "/".join(OPS), kind))
    key = _string(rec, "key", line, False)
    if "ok" not in rec or rec["ok"] not in (True, False, None):
        raise HistoryError("line %s: 'ok' must be true, false or null" % line)
    ok = rec["ok"]
    error = rec.get("error")
    if error is not None and not isinstance(error, str):
        raise HistoryError("line %s: 'error' must be a string" % line)
    invoke = _number(rec, "invoke", line)
    complete = _number(rec, "complete", line, allow_null=ok is None)
    if complete is not None and complete < invoke:
        raise HistoryError("line %s: completes (%g) before it is invoked (%g)"
                           % (line, complete, invoke))
    value = expected = result = None
    if kind in ("write", "cas"):
        value = _string(rec, "value", line, False)
    if kind == "cas":
        if "expected" not in rec:
            raise HistoryError("line %s: a cas needs 'expected'" % line)
        expected = _string(rec, "expected", line, True)
    if kind == "read" and ok:
        if "result" not in rec:
            raise HistoryError("line %s: a successful read needs 'result'"
                               % line)
        result = _string(rec, "result", line, True)
    return Op(line, rec.get("client"), key, kind, value, expected, result, ok,
              error, invoke, complete)


def load_history(source):
    """Read a JSON Lines history from a path or an iterable of lines and
    return a list of Op (blank lines are skipped). Raises HistoryError with
    the line number on a malformed line, OSError if the file cannot be
    read."""
    if isinstance(source, str):
        with open(source, encoding="utf-8") as f:
            return load_history(f.readlines())
    ops = []
    for n, text in enumerate(source, 1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except ValueError as e:
            raise HistoryError("line %d: not JSON: %s" % (n, e)) from None
        ops.append(op_from_record(rec, n))
    return ops


def _takes_part(op):
    """False for operations that cannot have touched the register: failed
    ones (unless they report what they saw) and reads with no answer."""
    if op.ok is False:
        return _is_mismatch(op)
    return not (op.ok is None and op.op == "read")


def _is_mismatch(op):
    """A failed cas or delete that ran and saw the value: it tells that the
    value was not `expected` (cas) or was absent (delete)."""
    return op.ok is False and (
        (op.op == "cas" and op.error == ERR_PRECONDITION) or
        (op.op == "delete" and op.error == ERR_ABSENT))


def _effect(op):
    """The value an operation leaves in the register when it takes effect."""
    return None if op.op == "delete" else op.value


def _users(op, ops):
    """The operations that could be explained by `op`, of unknown outcome,
    having taken effect: those completing after its invoke that could see
    its value (reads of it, cas expecting it)."""
    v = _effect(op)
    return [o for o in ops if o is not op and o.complete > op.invoke and
            ((o.op == "read" and o.result == v) or
             (o.op == "cas" and o.ok is not False and o.expected == v))]


def _prepare(ops):
    """Choose what the search needs to decide, and by when. Returns the ops
    to search, the time by which each must be decided, and whether it must
    take effect (definite) or may also never take effect (optional).

    - Definite operations: by their completion.
    - An unknown-outcome op nothing could have seen is dropped: whether it
      happened changes nothing.
    - One that alone produces a value (values are unique in practice) that
      a successful read or cas saw must have happened before the first of
      those completed: it becomes definite with that completion.
    - Any other is optional, decided by the last completion of an op that
      could see it; past that, having happened is the same as never.
    - A mismatch (failed cas or delete that saw the value) is checked only
      if no unknown-outcome write, cas or delete began before it completed:
      otherwise such an op could explain it, and keeping that op open for
      it would make the search exponential, so the mismatch is dropped (a
      weaker but sound check)."""
    ops = [o for o in ops if _takes_part(o)]
    effects = [o for o in ops if o.op != "read"]
    while True:  # dropping one unknown cas may leave another unseen
        unseen = {id(o) for o in ops if o.ok is None and not _users(o, ops)}
        if not unseen:
            break
        ops = [o for o in ops if id(o) not in unseen]
    first_unknown = min((o.invoke for o in effects if o.ok is None),
                        default=math.inf)
    ops = [o for o in ops
           if not (_is_mismatch(o) and o.complete >= first_unknown)]
    producers = {}
    for o in effects:
        if o.ok is not False:
            producers[_effect(o)] = producers.get(_effect(o), 0) + 1
    ends, must = [], []
    for o in ops:
        end, definite = o.complete, o.ok is not None
        if not definite:
            users = _users(o, ops)
            v = _effect(o)
            required = [u.complete for u in users if u.ok is True]
            end = max(u.complete for u in users)
            if v is not None and producers.get(v) == 1 and required:
                end, definite = min(required), True
        ends.append(end)
        must.append(definite)
    return ops, ends, must


def _quick_check(ops):
    """Necessary conditions that catch the common violations in linear-ish
    time, before the search: a read (or successful cas) needing value v is
    impossible if every op that could produce v (or the initial absent
    value, for v absent) either began after it completed or was overwritten
    in real time before it began, by a definite op that completed after the
    producer and before the read began. Returns (op, message) for the first
    such op by completion, or None."""
    producers = {None: [None]}  # None stands for the initial value
    effects = []
    for o in ops:
        if o.op != "read" and o.ok is not False:
            producers.setdefault(_effect(o), []).append(o)
            if o.ok is True:
                effects.append(o)
    effects.sort(key=lambda o: o.invoke)
    starts = [o.invoke for o in effects]
    # suffix minimum of completions of definite effects, by invoke
    suffix = [math.inf] * (len(effects) + 1)
    for j in range(len(effects) - 1, -1, -1):
        suffix[j] = min(effects[j].complete, suffix[j + 1])
    hidden = {}  # id(producer) -> (completion of the first hider, hider)

    def hide(p, v):
        if id(p) in hidden:
            return hidden[id(p)]
        after = -math.inf if p is None else p.complete
        lo = bisect.bisect_right(starts, after)
        if len(producers[v]) == 1 and v is not None:
            best = suffix[lo]  # only p writes v, and p is not after itself
            w = next((o for o in effects[lo:] if o.complete == best), None)
        else:
            cands = [o for o in effects[lo:] if _effect(o) != v]
            w = min(cands, key=lambda o: o.complete, default=None)
            best = w.complete if w else math.inf
        hidden[id(p)] = (best, w)
        return best, w

    for o in sorted(ops, key=lambda o: o.complete):
        if o.ok is not True or o.op not in ("read", "cas"):
            continue
        v = o.result if o.op == "read" else o.expected
        why = []
        for p in producers.get(v, []):
            if p is not None and p.invoke > o.complete:
                why.append("  %s began after it completed" % p.describe())
                continue
            at, w = hide(p, v)
            if at >= o.invoke:
                break
            why.append("  %s\n    was overwritten before it began by %s" % (
                "the initial absent value" if p is None else p.describe(),
                w.describe()))
        else:
            need = "This operation needs the value %s:\n  %s\n" % (
                show(v), o.describe())
            if not why:
                return o, need + "but no operation writes it."
            return o, need + "but every way it could have been written " \
                "fails:\n" + "\n".join(why)
    return None


class KeyResult:
    """The verdict on one key. When not linearizable: `stuck` is the
    operation no ordering could fit before its completion, `prefix` the
    longest linearization found as (op, took effect, value after), `value`
    the register after that prefix, `ops` every operation checked."""

    def __init__(self, key, ok, ops, stuck=None, prefix=(), value=None,
                 steps=0, reason=None):
        self.reason = reason  # set when the quick check found it
        self.key = key
        self.ok = ok
        self.ops = ops
        self.stuck = stuck
        self.prefix = list(prefix)
        self.value = value
        self.steps = steps

    def explain(self, limit=12):
        """A few lines saying why the key is not linearizable."""
        if self.ok:
            return "key %s: linearizable (%d operations)" % (
                json.dumps(self.key), len(self.ops))
        s = self.stuck
        if self.reason:
            return "key %s is not linearizable (%d operations on it).\n%s" % (
                json.dumps(self.key), len(self.ops), self.reason)
        out = ["key %s is not linearizable (%d operations on it)." %
               (json.dumps(self.key), len(self.ops)),
               "No order of the operations lets this one take effect "
               "between its invoke and its completion:",
               "  " + s.describe()]
        n = len(self.prefix)
        if n:
            out.append("The longest linearization found orders %d operations;"
                       " it ends with:" % n)
            if n > limit:
                out.append("  ...")
            for op, took, after in self.prefix[-limit:]:
                out.append("  %s   => %s%s" % (
                    op.describe(), show(after),
                    "" if took else " (never took effect)"))
        out.append("after which the value is %s." % show(self.value))
        lo, hi = s.invoke, s.complete
        overlap = [o for o in self.ops if o is not s and o.invoke <= hi and
                   o.complete >= lo]
        if overlap:
            out.append("Operations overlapping it in time:")
            for o in overlap[:limit]:
                out.append("  " + o.describe())
            if len(overlap) > limit:
                out.append("  ... and %d more" % (len(overlap) - limit))
        else:
            out.append("No operation overlaps it in time.")
        return "\n".join(out)


def check_key(ops, key=None, max_steps=None, quick=True):
    """Check that the operations on one register are linearizable from an
    absent initial value. Returns a KeyResult; raises Inconclusive after
    max_steps search steps (None: no limit). With quick, the cheap
    necessary conditions of _quick_check run first. Does not modify
    `ops`."""
    ops, ends, must = _prepare(ops)
    if quick:
        found = _quick_check(ops)
        if found:
            return KeyResult(key, False, ops, found[0], reason=found[1])
    n = len(ops)
    # events: 2*i is op i's call, 2*i+1 its return (its deadline). Calls
    # sort before returns at equal times so that touching operations count
    # as concurrent; optional ops' deadlines after definite ones.
    events = sorted(
        [(o.invoke, 0, i) for i, o in enumerate(ops)] +
        [(ends[i], 1 if must[i] else 2, i) for i in range(n)])
    head = 2 * n  # sentinel
    nxt = [0] * (2 * n + 1)
    prv = [0] * (2 * n + 1)
    last = head
    for _, kind, i in events:
        e = 2 * i + (kind > 0)
        nxt[last] = e
        prv[e] = last
        last = e
    nxt[last] = -1

    kinds = [o.op for o in ops]
    oks = [o.ok for o in ops]
    values = [o.value for o in ops]
    expecteds = [o.expected for o in ops]
    results = [o.result for o in ops]
    # A pure op (one that never changes the value: a read, a mismatch, a
    # cas of a value to itself) that can be linearized now may as well be:
    # a linearization of the rest can be rearranged to put it first. So it
    # is taken without trying other orders, and if that leads to a dead end
    # the node is one too. Deciding that an optional op never took effect,
    # at its deadline, is forced the same way.
    pure = [o.op == "read" or o.ok is False or
            (o.op == "cas" and o.expected == o.value) for o in ops]

    state = None
    linearized = 0  # bitset of decided ops
    cache = set()  # (linearized, state) already explored
    stack = []  # (call event, value before, forced, took effect)
    best = (-1, None, None, None)
    steps = 0
    remaining = sum(must)
    entry = nxt[head]
    while remaining:
        steps += 1
        if max_steps is not None and steps > max_steps:
            raise Inconclusive("key %s: no verdict after %d search steps" %
                               (json.dumps(key), max_steps))
        i = entry >> 1
        if entry & 1 == 0:  # a call: try to linearize it now
            k = kinds[i]
            if k == "read":
                new, allowed = state, results[i] == state
            elif k == "write":
                new, allowed = values[i], True
            elif k == "delete":
                new, allowed = None, oks[i] is not False or state is None
            elif oks[i] is False:  # cas that saw another value
                new, allowed = state, state != expecteds[i]
            else:
                new, allowed = values[i], state == expecteds[i]
            forced, took = pure[i], True
        elif not must[i]:  # an optional op's deadline: it never happened
            entry -= 1
            new, allowed, forced, took = state, True, True, False
        else:
            allowed = False  # a definite op not linearized in time
            if len(stack) > best[0]:
                best = (len(stack), i, list(stack), state)
        if allowed:
            bits = linearized | (1 << i)
            if (bits, new) not in cache:
                cache.add((bits, new))
                stack.append((entry, state, forced, took))
                state = new
                linearized = bits
                if must[i]:
                    remaining -= 1
                # lift the call and its return out of the list
                ret = entry + 1
                nxt[prv[entry]] = nxt[entry]
                prv[nxt[entry]] = prv[entry]
                nxt[prv[ret]] = nxt[ret]
                if nxt[ret] != -1:
                    prv[nxt[ret]] = prv[ret]
                entry = nxt[head]
                continue
        if entry & 1 == 0 and not (allowed and forced):
            entry = nxt[entry]  # try the next candidate
            continue
        # a dead end: undo the last choice, and every forced step above it
        while stack:
            entry, state, forced, _ = stack.pop()
            i = entry >> 1
            linearized ^= 1 << i
            if must[i]:
                remaining += 1
            ret = entry + 1
            nxt[prv[ret]] = ret
            if nxt[ret] != -1:
                prv[nxt[ret]] = ret
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            if not forced:
                break
        else:
            break  # nothing left to undo: not linearizable
        entry = nxt[entry]
    if not remaining:
        return KeyResult(key, True, ops, steps=steps)
    _, stuck, frames, value = best
    prefix = []
    for k, (e, _, _, took) in enumerate(frames):
        after = frames[k + 1][1] if k + 1 < len(frames) else value
        prefix.append((ops[e >> 1], took, after))
    return KeyResult(key, False, ops, ops[stuck], prefix, value, steps)


class Result:
    """The verdict on a whole history: `ok`, and per checked key a
    KeyResult in `keys` (in order of first appearance). `failed` lists the
    non-linearizable ones."""

    def __init__(self, keys):
        self.keys = keys
        self.failed = [r for r in keys if not r.ok]
        self.ok = not self.failed

    def explain(self):
        if self.ok:
            return "linearizable: %d operations on %d keys" % (
                sum(len(r.ops) for r in self.keys), len(self.keys))
        return "\n\n".join(r.explain() for r in self.failed)


def by_key(ops):
    """Group operations by key, keys in order of first appearance."""
    groups = {}
    for o in ops:
        groups.setdefault(o.key, []).append(o)
    return groups


def check_history(ops, stop_at_first=True, max_steps=None, quick=True):
    """Check every key of a history (a list of Op, or dicts in the JSON
    format). Returns a Result; with stop_at_first the keys after the first
    violating one are not checked. Raises HistoryError on a malformed
    record and Inconclusive when a key exceeds max_steps."""
    ops = [o if isinstance(o, Op) else op_from_record(o, n)
           for n, o in enumerate(ops, 1)]
    results = []
    for key, group in by_key(ops).items():
        r = check_key(group, key, max_steps, quick)
        results.append(r)
        if not r.ok and stop_at_first:
            break
    return Result(results)


# ---- multi-key transactions (POST /txn) ----
#
# The register model above checks one key at a time, which cannot see a
# transaction that is atomic on each key but not on all of them together.
# The txn model takes the whole store as one object: a transaction reads
# some keys and writes some keys at one instant. It is checked by the same
# kind of search (Wing & Gong with a cache of (decided set, state)), over
# every transaction of the history at once, so it suits histories of a few
# thousand operations over a few keys (test_txn.py's transfers).


class Txn:
    """One transaction of a txn history: `reads` {key: value or None
    (absent)} it saw, `writes` {key: value or None (deleted)} it made, all
    at one instant; `ok` True (took effect between invoke and complete),
    False (no effect: ignored) or None (unknown: at some instant after
    invoke, or never)."""

    __slots__ = ("line", "client", "reads", "writes", "ok", "invoke",
                 "complete")

    def __init__(self, line, client, reads, writes, ok, invoke, complete):
        self.line = line
        self.client = client
        self.reads = reads
        self.writes = writes
        self.ok = ok
        self.invoke = invoke
        self.complete = math.inf if ok is None or complete is None \
            else complete

    def describe(self):
        end = "?" if self.complete == math.inf else "%g" % self.complete
        return "line %s: client %s txn reads %s writes %s, %s  " \
            "[invoke %g, complete %s]" % (
                self.line, self.client, _show_map(self.reads),
                _show_map(self.writes),
                {True: "ok", False: "failed", None: "outcome unknown"}[
                    self.ok], self.invoke, end)


def _show_map(m):
    return "{" + ", ".join("%s: %s" % (k, show(v))
                           for k, v in sorted(m.items())) + "}"


def _kv_map(rec, field, line):
    v = rec.get(field, {})
    if not isinstance(v, dict) or not all(
            isinstance(x, str) or x is None for x in v.values()):
        raise HistoryError("line %s: %r must be an object of strings or "
                           "nulls" % (line, field))
    return dict(v)


def txn_from_record(rec, line):
    """A Txn from {"client", "reads", "writes", "ok", "invoke",
    "complete"}; HistoryError if malformed."""
    if not isinstance(rec, dict):
        raise HistoryError("line %s: not a JSON object" % line)
    if "ok" not in rec or rec["ok"] not in (True, False, None):
        raise HistoryError("line %s: 'ok' must be true, false or null" % line)
    invoke = _number(rec, "invoke", line)
    complete = _number(rec, "complete", line, allow_null=rec["ok"] is None)
    if complete is not None and complete < invoke:
        raise HistoryError("line %s: completes (%g) before it is invoked (%g)"
                           % (line, complete, invoke))
    return Txn(line, rec.get("client"), _kv_map(rec, "reads", line),
               _kv_map(rec, "writes", line), rec["ok"], invoke, complete)


class TxnResult:
    """The verdict on a txn history: `ok`; when not, `stuck` is a definite
    transaction no order fits before its completion and `prefix` the
    longest order found."""

    def __init__(self, ok, txns, stuck=None, prefix=(), state=None, steps=0):
        self.ok = ok
        self.txns = txns
        self.stuck = stuck
        self.prefix = list(prefix)
        self.state = state or {}
        self.steps = steps

    def explain(self, limit=12):
        if self.ok:
            return "linearizable: %d transactions" % len(self.txns)
        out = ["not linearizable (%d transactions)." % len(self.txns),
               "No order lets this one take effect before it completes:",
               "  " + self.stuck.describe(),
               "The longest order found has %d transactions; it ends with:"
               % len(self.prefix)]
        for t in self.prefix[-limit:]:
            out.append("  " + t.describe())
        out.append("after which the store is %s." % _show_map(self.state))
        return "\n".join(out)


def check_txns(txns, initial=None, max_steps=None):
    """Check a list of Txn (or dicts) from the store `initial` ({key:
    value}, default empty). An unknown transaction none of whose written
    values anyone read is dropped (values are unique in practice); a read-
    only one that can go now goes now (it changes nothing, so no order of
    the rest is lost). Returns a TxnResult; Inconclusive after max_steps."""
    txns = [t if isinstance(t, Txn) else txn_from_record(t, n)
            for n, t in enumerate(txns, 1)]
    txns = [t for t in txns if t.ok is not False]
    seen = set()
    for t in txns:
        if t.ok is True:
            seen.update((k, v) for k, v in t.reads.items())
    txns = [t for t in txns if t.ok is True or
            any((k, v) in seen for k, v in t.writes.items())]
    txns.sort(key=lambda t: t.invoke)
    n = len(txns)
    keys = sorted({k for t in txns for k in list(t.reads) + list(t.writes)} |
                  set(initial or {}))
    kidx = {k: i for i, k in enumerate(keys)}
    start = tuple((initial or {}).get(k) for k in keys)
    reads = [[(kidx[k], v) for k, v in t.reads.items()] for t in txns]
    writes = [[(kidx[k], v) for k, v in t.writes.items()] for t in txns]
    definite = [t.ok is True for t in txns]
    pure = [not t.writes for t in txns]
    remaining = sum(definite)
    state = start
    stack = []  # (index taken, state before, candidates left)
    cache = set()
    best = (-1, None, None, None)
    steps = 0

    # taken: every op before lo, and those in above (all >= lo)
    lo, above = 0, set()

    def candidates():
        # ops sorted by invoke: past the first one not yet taken, each
        # whose invoke is before every pending definite completion
        horizon, out = math.inf, []
        for i in range(lo, n):
            if txns[i].invoke > horizon:
                break
            if i not in above:
                out.append(i)
                if definite[i] and txns[i].complete < horizon:
                    horizon = txns[i].complete
        return out

    cands = candidates()
    while remaining:
        steps += 1
        if max_steps is not None and steps > max_steps:
            raise Inconclusive("txns: no verdict after %d steps" % max_steps)
        took = None
        while cands:
            i = cands.pop(0)
            if any(state[k] != v for k, v in reads[i]):
                continue
            new = list(state)
            for k, v in writes[i]:
                new[k] = v
            new = tuple(new)
            nlo = lo
            while nlo == i or nlo in above:
                nlo += 1
            key = (nlo, frozenset(j for j in above if j > nlo) |
                   ({i} if i > nlo else set()), new)
            if key in cache:
                continue
            cache.add(key)
            took = (i, new, nlo)
            if pure[i]:
                cands = []  # forced: no other choice to come back to
            break
        if took is None:
            if len(stack) > best[0]:
                pending = [j for j in range(lo, n) if definite[j] and
                           j not in above]
                stuck = min(pending, key=lambda j: txns[j].complete)
                best = (len(stack), stuck, [txns[f[0]] for f in stack],
                        state)
            if not stack:
                break
            i, state, cands, olo = stack.pop()
            above.update(range(olo, lo))  # back as they were, but i
            above.discard(i)
            lo = olo
            if definite[i]:
                remaining += 1
            continue
        i, new, nlo = took
        stack.append((i, state, cands, lo))
        state = new
        above.add(i)
        for j in range(lo, nlo):
            above.discard(j)
        lo = nlo
        if definite[i]:
            remaining -= 1
        cands = candidates()
    if not remaining:
        return TxnResult(True, txns, steps=steps)
    _, stuck, prefix, st = best
    return TxnResult(False, txns, txns[stuck], prefix,
                     {k: st[kidx[k]] for k in keys}, steps)


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Check a JSON Lines history of register operations for "
        "linearizability, key by key. Exit 0: linearizable; 1: not (the "
        "first violating key is explained); 2: bad input; 3: no verdict "
        "within --max-steps.")
    p.add_argument("history", help="JSON Lines file, '-' for stdin")
    p.add_argument("--all", action="store_true",
                   help="check every key and explain every violation")
    p.add_argument("--max-steps", type=int, default=None,
                   help="give up on a key after this many search steps")
    a = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        ops = load_history(sys.stdin if a.history == "-" else a.history)
        result = check_history(ops, not a.all, a.max_steps)
    except (HistoryError, OSError) as e:
        print("linearizability: %s" % e, file=sys.stderr)
        return 2
    except Inconclusive as e:
        print("linearizability: inconclusive: %s" % e, file=sys.stderr)
        return 3
    if result.ok:
        print("%s (%.2fs)" % (result.explain(), time.monotonic() - t0))
        return 0
    print("NOT LINEARIZABLE\n" + result.explain())
    return 1


if __name__ == "__main__":
    sys.exit(main())
