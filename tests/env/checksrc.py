#!/usr/bin/env python3
"""checksrc — the project's C conventions (ARCHITECTURE.md §2 and §8), checked.

    tests/env/checksrc.py [--rule R]... [--skip R]... PATH...   findings, exit 1 if any
    tests/env/checksrc.py --summary PATH...                     counts per folder and rule
    tests/env/checksrc.py --stats PATH...                       the figures of the code
    tests/env/checksrc.py --selftest                            each rule on samples

PATH is a file or a folder (searched for .c and .h files; build output,
anything under build/, and the eval's task repositories, eval/tasks/, which
are inputs of the eval and not product code, are left out). Findings print
as `path:line: rule: message`. The rules:

  banned          calls the conventions ban: strcpy, strcat, sprintf, vsprintf,
                  strtok, atoi, atol, atoll, atof, gets
  assign-in-cond  an assignment inside the condition of if, while or switch
  func-length     a function longer than 120 lines (from the line of its name
                  to its closing brace)
  include         an include against the direction of the map: cli may include
                  every part; bot, web, mcp, nodes and spawner include engine,
                  llm, secrets and core; engine, llm and secrets include core;
                  core includes core. Tests and benchmarks are not checked.
  int-header      a folder's `*_int.h` header included from another folder
  sql-table       SQL (in a string literal) on a table or function that another
                  part's migration created (migrations/NNN_<part>*.sql)

Python 3 standard library only, like the rest of the test drivers.
"""
import argparse
import os
import re
import sys

FUNC_BUDGET = 120
BANNED = ("strcpy", "strcat", "sprintf", "vsprintf", "strtok", "atoi", "atol", "atoll", "atof",
          "gets")
RULES = ("banned", "assign-in-cond", "func-length", "include", "int-header", "sql-table")

# ARCHITECTURE.md §2: dependencies point one way, level by level; a part may
# include its own folder and the levels below its own.
LEVEL = {"core": 0, "engine": 1, "llm": 1, "secrets": 1,
         "bot": 2, "web": 2, "mcp": 2, "nodes": 2, "spawner": 2, "cli": 3}
# Who owns a migration's tables and functions: by the file's name; a
# function's name prefix wins over it.
MIGRATION_OWNER = (("engine", "engine"), ("llm", "llm"), ("secret", "secrets"), ("bot", "bot"),
                   ("spawn", "spawner"), ("worker", "spawner"), ("factory", "nodes"),
                   ("web", "web"), ("mcp", "mcp"))
FUNCTION_PREFIX = (("orch_", "engine"), ("llm_", "llm"), ("bot_", "bot"), ("spawn_", "spawner"),
                   ("sec_", "secrets"))
SQL_WORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WITH|CALL)\b")
SQL_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_][a-z0-9_]*)")
SQL_CALL = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\(")
CREATE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+)?(TABLE|FUNCTION)\s+"
                    r"(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)", re.I | re.M)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
COND = re.compile(r"\b(if|while|switch)\s*\(")
BANNED_CALL = re.compile(r"(?<![\w.>])(" + "|".join(BANNED) + r")\s*\(")

# --- reading C ---


def scan(text):
    """Returns (code, strings): the text with comments, string and character
    literals blanked (newlines kept, so line numbers hold) and preprocessor
    lines blanked; and the string literals as (line, contents), adjacent ones
    joined (C concatenates them)."""
    out = []
    strings = []
    i, n, line = 0, len(text), 1
    last_str_end = None  # index in out after the last string literal
    bol = True  # nothing but blanks since the start of the line
    while i < n:
        c = text[i]
        if c not in " \t\n\r" and not (c == "/" and text.startswith(("/*", "//"), i)):
            was_bol, bol = bol, False
        else:
            was_bol = bol
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            chunk = text[i:j]
            out.append(re.sub(r"[^\n]", " ", chunk))
            line += chunk.count("\n")
            i = j
            continue
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            body = text[i + 1:j - 1]
            if c == '"':
                between = "".join(out[last_str_end:]) if last_str_end is not None else None
                if strings and between is not None and between.strip() == "":
                    strings[-1] = (strings[-1][0], strings[-1][1] + body)
                else:
                    strings.append((line, body))
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + c)
            line += text[i:j].count("\n")
            i = j
            if c == '"':
                last_str_end = len(out)
            continue
        if c == "#" and was_bol:
            # a preprocessor line, with its continuations
            j = i
            while True:
                k = text.find("\n", j)
                if k < 0:
                    k = n
                    break
                if text[k - 1] == "\\":
                    j = k + 1
                    continue
                break
            chunk = text[i:k]
            out.append(re.sub(r"[^\n]", " ", chunk))
            line += chunk.count("\n")
            i = k
            continue
        if c == "\n":
            line += 1
            bol = True
        out.append(c)
        i += 1
    return "".join(out), strings


def line_of(code, pos):
    return code.count("\n", 0, pos) + 1


def matching(code, pos, open_ch, close_ch, step):
    """Index of the bracket matching the one at pos, scanning by step (+1/-1)."""
    depth = 0
    i = pos
    while 0 <= i < len(code):
        if code[i] == open_ch:
            depth += 1
        elif code[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
        i += step
    return -1


def functions(code):
    """(name, first line, last line) of every function definition."""
    found = []
    depth = 0
    i = 0
    while i < len(code):
        c = code[i]
        if c == "{":
            if depth == 0:
                j = i - 1
                while j >= 0 and code[j].isspace():
                    j -= 1
                if j >= 0 and code[j] == ")":
                    k = matching(code, j, ")", "(", -1)
                    m = re.search(r"([A-Za-z_]\w*)\s*$", code[:k]) if k > 0 else None
                    end = matching(code, i, "{", "}", 1)
                    if m and end > 0:
                        found.append((m.group(1), line_of(code, m.start(1)),
                                      line_of(code, end)))
                        i = end + 1
                        continue
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return found


def is_assignment(cond):
    for k, ch in enumerate(cond):
        if ch != "=":
            continue
        prev = cond[k - 1] if k else ""
        nxt = cond[k + 1] if k + 1 < len(cond) else ""
        if nxt == "=" or prev == "=":
            continue
        if prev in "!<>":
            if cond[max(0, k - 2):k] in ("<<", ">>"):
                return True
            continue
        return True
    return False


# --- the tree ---


def part_of(path, root):
    rel = os.path.relpath(path, root)
    return rel.split(os.sep)[0] if os.sep in rel else ""


def load_owners(root):
    """{table or function: owning part} from the migrations."""
    owners = {}
    mdir = os.path.join(root, "migrations")
    if not os.path.isdir(mdir):
        return owners
    for name in sorted(os.listdir(mdir)):
        if not name.endswith(".sql"):
            continue
        part = next((p for key, p in MIGRATION_OWNER if key in name), None)
        with open(os.path.join(mdir, name), encoding="utf-8", errors="replace") as f:
            sql = f.read()
        for kind, obj in CREATE.findall(sql):
            obj = obj.lower()
            owner = part
            if kind.upper() == "FUNCTION":
                owner = next((p for pre, p in FUNCTION_PREFIX if obj.startswith(pre)), part)
            if owner:
                owners.setdefault(obj, owner)
    return owners


# not product code: build output, and the eval's task repositories (inputs
# of the eval), relative to the root
NOT_PRODUCT = ("build", os.path.join("eval", "tasks"))


def product(path, root):
    rel = os.path.relpath(path, root)
    return not any(rel == x or rel.startswith(x + os.sep) for x in NOT_PRODUCT)


def files_under(paths, root):
    out = []
    for p in paths:
        if os.path.isfile(p):
            if product(p, root):
                out.append(p)
            continue
        for d, dirs, names in os.walk(p):
            dirs[:] = sorted(x for x in dirs if not x.startswith(".") and x != "build" and
                             product(os.path.join(d, x), root))
            out.extend(os.path.join(d, x) for x in sorted(names) if x.endswith((".c", ".h")))
    return out


def check_file(path, root, owners, rules):
    """[(line, rule, message)] for one file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    code, strings = scan(text)
    part = part_of(path, root)
    found = []
    if "banned" in rules:
        for m in BANNED_CALL.finditer(code):
            found.append((line_of(code, m.start()), "banned",
                          "%s() is banned (snprintf, buf_*, checked strtol instead)" % m.group(1)))
    if "assign-in-cond" in rules:
        for m in COND.finditer(code):
            close = matching(code, m.end() - 1, "(", ")", 1)
            if close > 0 and is_assignment(code[m.end():close]):
                found.append((line_of(code, m.start()), "assign-in-cond",
                              "assignment inside the condition of %s: assign first, then test"
                              % m.group(1)))
    if "func-length" in rules and path.endswith(".c"):
        for name, first, last in functions(code):
            if last - first + 1 > FUNC_BUDGET:
                found.append((first, "func-length", "%s() is %d lines (budget %d): split it"
                              % (name, last - first + 1, FUNC_BUDGET)))
    if ("include" in rules or "int-header" in rules) and part in LEVEL:
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            ipart = inc.split("/")[0] if "/" in inc else ""
            ln = text.count("\n", 0, m.start()) + 1
            if "int-header" in rules and inc.endswith("_int.h") and ipart != part:
                found.append((ln, "int-header", "%s is internal to %s/" % (inc, ipart)))
            if "include" in rules and ipart in LEVEL and ipart != part and \
                    LEVEL[ipart] >= LEVEL[part]:
                found.append((ln, "include", "%s/ may not include %s (ARCHITECTURE.md §2: "
                              "cli -> bot, web, mcp, nodes, spawner -> engine, llm, secrets "
                              "-> core)" % (part, inc)))
    if "sql-table" in rules and part in LEVEL:
        for ln, s in strings:
            if not SQL_WORD.search(s):
                continue
            seen = set()
            for name in SQL_TABLE.findall(s) + SQL_CALL.findall(s):
                owner = owners.get(name)
                if owner and owner != part and name not in seen:
                    seen.add(name)
                    found.append((ln, "sql-table", "SQL on %s, which belongs to %s/ (use its "
                                  "API)" % (name, owner)))
    return sorted(found)


# --- figures ---

STATE_WORDS = (
    # stages, task statuses, question kinds and options, worker and run statuses, modes
    "brainstorm spec_review architect plan_review develop done stopped cancelled queued working "
    "review reviewing changes review_error review_budget approved merge_wait merge_ready merging "
    "merged blocked skipped failed unverified refused invalid conflict budget rounds merge work "
    "publish retry skip stop accept extend approve change cancel rework running finished pending "
    "decided expired waiting").split()
STATE_CMP = re.compile(r"\bstrn?cmp\s*\(([^;]*?)\"(" + "|".join(STATE_WORDS) + r")\"")
JSON_ACCESS = re.compile(r"\b(json_(?:object_get|object_set\w*|object_del|array_get|array_size|"
                         r"string_value|integer_value|number_value|real_value|is_\w+|"
                         r"object_foreach|array_foreach)|jx_\w+)\s*\(")


def stats(paths, root, owners):
    files = files_under(paths, root)
    longest = []
    over = 0
    cmp_count = 0
    json_count = {}
    cross = set()
    lines = 0
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines += text.count("\n")
        code, _ = scan(text)
        if path.endswith(".c"):
            for name, first, last in functions(code):
                n = last - first + 1
                longest.append((n, name, path))
                over += n > 100
        cmp_count += len(STATE_CMP.findall(text))
        json_count[path] = len(JSON_ACCESS.findall(code))
        if check_file(path, root, owners, ("sql-table",)):
            cross.add(path)
    longest.sort(reverse=True)
    print("files: %d, lines: %d" % (len(files), lines))
    print("longest functions:")
    for n, name, path in longest[:5]:
        print("  %4d %s (%s)" % (n, name, os.path.relpath(path, root)))
    print("functions over 100 lines: %d; over %d: %d" %
          (over, FUNC_BUDGET, sum(1 for n, _, _ in longest if n > FUNC_BUDGET)))
    print("strcmp/strncmp against a state word (stage, status, kind, mode...): %d" % cmp_count)
    print("raw JSON accesses (json_*get/set/value/is/foreach, jx_*) most:")
    for path, n in sorted(json_count.items(), key=lambda x: -x[1])[:3]:
        print("  %4d %s" % (n, os.path.relpath(path, root)))
    print("files with SQL on another part's tables: %d" % len(cross))
    for path in sorted(cross):
        print("  " + os.path.relpath(path, root))


# --- self test: each rule catches what it must, and only that ---

SAMPLES = {
    "banned": ("int f(char *d, const char *s) { strcpy(d, s); return atoi(s); }\n"
               "int g(char *d) { return snprintf(d, 4, \"x\") + x.atoi(1) + obj->sprintf(2); }\n",
               2),
    "assign-in-cond": ("int f(int a) {\n if ((a = g()) < 0) return a;\n while (a <<= 1) {}\n"
                       " if (a == 1 || a <= 2 || a != 3 || a >= 4) return 0;\n"
                       " for (a = 0; a < 3; a++) {}\n if (h(\"x = y\")) return 1;\n"
                       " switch (a += 1) {}\n return 0; }\n", 3),
    "func-length": ("static int small(void)\n{\n" + "\tx++;\n" * 10 + "}\n"
                    "static const int table[] = {\n" + "\t1,\n" * 200 + "};\n"
                    "int big(int a)\n{\n" + "\ta++;\n" * 119 + "}\n", 1),
}


def selftest():
    failures = 0
    for rule, (src, want) in SAMPLES.items():
        path = os.path.join("/nonexistent", "nodes", "sample.c")
        code, strings = scan(src)
        got = []
        if rule == "banned":
            got = BANNED_CALL.findall(code)
        elif rule == "assign-in-cond":
            got = [m for m in COND.finditer(code)
                   if is_assignment(code[m.end():matching(code, m.end() - 1, "(", ")", 1)])]
        elif rule == "func-length":
            got = [f for f in functions(code) if f[2] - f[1] + 1 > FUNC_BUDGET]
        ok = len(got) == want
        failures += not ok
        print("%s %s: %d found, %d expected (%s)" % ("ok" if ok else "FAIL", rule, len(got), want,
                                                      path))
    # include direction, internal headers and SQL need a tree
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        for d in ("nodes", "engine", "migrations"):
            os.makedirs(os.path.join(root, d))
        with open(os.path.join(root, "migrations", "001_engine.sql"), "w") as f:
            f.write("CREATE TABLE runs (id int);\nCREATE FUNCTION orch_go() RETURNS int;\n")
        with open(os.path.join(root, "migrations", "006_factory.sql"), "w") as f:
            f.write("CREATE TABLE factory_notes (id int);\n"
                    "CREATE FUNCTION spawn_stop(p int) RETURNS int;\n")
        src = ('#include "engine/graph_int.h"\n#include "engine/ctx.h"\n#include "cli/cli.h"\n'
               '#include "bot/bot.h"\n#include "nodes/nd_int.h"\n'
               'static const char *Q = "SELECT id FROM runs JOIN factory_notes n ON true "\n'
               '\t"WHERE orch_go() > 0";\nstatic const char *R = "SELECT spawn_stop(1)";\n'
               'static const char *T = "the runs FROM the past";\n')
        path = os.path.join(root, "nodes", "x.c")
        with open(path, "w") as f:
            f.write(src)
        got = check_file(path, root, load_owners(root), RULES)
        want = [(1, "int-header"), (3, "include"), (4, "include"), (6, "sql-table"),
                (6, "sql-table"), (8, "sql-table")]
        ok = [(ln, r) for ln, r, _ in got] == want
        failures += not ok
        print("%s include, int-header, sql-table: %s" %
              ("ok" if ok else "FAIL", [(ln, r) for ln, r, _ in got]))
        # the eval's task repositories and build output are not product code
        for d in (os.path.join("eval", "tasks", "t1"), os.path.join("build", "obj"), "eval"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
            with open(os.path.join(root, d, "y.c"), "w") as f:
                f.write("int f(char *d) { strcpy(d, \"x\"); return 0; }\n")
        got = [os.path.relpath(p, root) for p in files_under([root], root)
               if "y.c" in p]
        ok = got == [os.path.join("eval", "y.c")]
        failures += not ok
        print("%s eval/tasks/ and build/ left out: %s" % ("ok" if ok else "FAIL", got))
    return failures


def main():
    ap = argparse.ArgumentParser(description="the project's C conventions, checked")
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--rule", action="append", choices=RULES, help="only these rules")
    ap.add_argument("--skip", action="append", choices=RULES, default=[], help="not these rules")
    ap.add_argument("--summary", action="store_true", help="counts per folder and rule")
    ap.add_argument("--stats", action="store_true", help="figures: functions, lines, ...")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    if a.selftest:
        return 1 if selftest() else 0
    if not a.paths:
        ap.error("name the files or folders to check")
    owners = load_owners(root)
    paths = [os.path.abspath(p) for p in a.paths]
    if a.stats:
        stats(paths, root, owners)
        return 0
    rules = [r for r in (a.rule or RULES) if r not in a.skip]
    counts = {}
    total = 0
    for path in files_under(paths, root):
        for ln, rule, msg in check_file(path, root, owners, rules):
            total += 1
            folder = part_of(path, root) or "."
            counts.setdefault(folder, {}).setdefault(rule, 0)
            counts[folder][rule] += 1
            if not a.summary:
                print("%s:%d: %s: %s" % (os.path.relpath(path, root), ln, rule, msg))
    if a.summary:
        for folder in sorted(counts):
            print("%-8s %4d  %s" % (folder, sum(counts[folder].values()), ", ".join(
                "%s %d" % (r, counts[folder][r]) for r in RULES if r in counts[folder])))
        print("total    %4d" % total)
        return 0
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
