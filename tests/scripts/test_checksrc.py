#!/usr/bin/env python3
"""The conventions checked (tests/env/checksrc.py): each rule catches what it
must on samples, and the whole tree has no finding. Prints TAP.

CLEAN lists what must have no finding (every part); the summary of the tree
is printed as `# ...` lines."""
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECKSRC = os.path.join(ROOT, "tests", "env", "checksrc.py")
# the whole tree: clean under every rule (the SQL rule is checked on its own
# so its findings print apart)
CLEAN = ["core", "engine", "llm", "secrets", "bot", "spawner", "nodes", "cli", "web", "mcp",
         "eval"]
CLEAN_SKIP = ["sql-table"]
SQL_LEFT = []
CLEAN_SQL = [p for p in CLEAN if p not in SQL_LEFT]
TREE = ["core", "engine", "llm", "secrets", "bot", "spawner", "nodes", "cli", "web", "mcp", "eval"]

results = []


def run(args):
    p = subprocess.run([sys.executable, CHECKSRC, "--root", ROOT] + args, cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def main():
    code, out = run(["--selftest"])
    for line in out.splitlines():
        results.append((line.startswith("ok "), "selftest: " + line.split(" ", 1)[-1]))
    results.append((code == 0 and len(out.splitlines()) >= 4, "the self test ran every rule"))

    args = [x for r in CLEAN_SKIP for x in ("--skip", r)] + CLEAN
    code, out = run(args)
    for line in out.splitlines():
        print("# " + line)
    results.append((code == 0 and not out.strip(),
                    "no finding in the %d clean folders and files (all rules but %s)" %
                    (len(CLEAN), ", ".join(CLEAN_SKIP))))

    code, out = run(["--rule", "sql-table"] + CLEAN_SQL)
    for line in out.splitlines():
        print("# " + line)
    results.append((code == 0 and not out.strip(),
                    "no SQL on another part's tables in %d of them" % len(CLEAN_SQL)))

    tree = [d for d in TREE if os.path.isdir(os.path.join(ROOT, d))]
    code, out = run(["--summary"] + tree)
    print("# what is left in the rest of the tree, per folder and rule:")
    for line in out.splitlines():
        print("#   " + line)
    results.append((code == 0 and "total" in out, "the summary of the tree"))

    print("1..%d" % len(results))
    for i, (ok, desc) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
