#!/usr/bin/env python3
"""Writes the shipped recordings of eval/recordings: model replies for five
eval tasks, as `orchestrator eval run --record DIR` stores them, so that
`orchestrator eval run --replay eval/recordings` (and `orchestrator demo`)
run the whole factory without a model.

No live model was available where these were made: the replies are written
by this script from each task's idea and its reference solution (the spec,
the plan, each agent's actions that write the files and run the tests, the
review verdicts). The token counts are estimates of what a model would
report (the prompt grows with the conversation, the completion is the
reply's length / 4). Everything else in a replayed run is real: the engine,
checkpoints, sandboxes, git, the tests, the merges and the hidden tests.

They are not all happy paths, so the report has something to show:
  py-wordfreq   a question first; two plan tasks, the command line after the
                function (the demo's project)
  js-slugify    the agent forgets that maxLength drops a trailing separator and
                the reviewer misses it: not solved by the hidden tests
  go-wordwrap   straight through
  sql-orgchart  the first worker submits with a failing test; the spawner's
                check fails it and the second attempt gets it right
  c-base64      the reviewer asks for the strict decoding of the last quantum;
                round two adds it
  chg-py-tasklog-emptyconfig
                a change to a repository of 2,600 lines (`new --repo`): the spec
                from what the repository says (AGENTS.md names the test command),
                a plan of one task on its config module, the fix and its
                regression test, merged into the repository's main

  eval/recordings/generate.py           rewrite the files
  eval/recordings/generate.py --check   exit 1 when a file differs from what
                                        this script writes (make test runs it)
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = os.path.join(os.path.dirname(HERE), "tasks")
MODEL = "coder"

MODELS = {
    "endpoints": {"recorded": {"base_url": "http://recorded.invalid", "slots": 4,
                               "timeout": "120s", "max_retries": 1}},
    "models": {"coder": {"endpoint": "recorded", "model": MODEL, "context": 131072,
                         "max_output": 4096, "price_in": 0.4, "price_out": 1.6}},
    "roles": {"default": ["coder"]},
}

DEMO = {
    "task": "py-wordfreq",
    "try": ["python3 wordfreq.py -n 5 README.md", "python3 -m unittest discover -v"],
}

PY_TEST = "python3 -m unittest discover -v"


def ref(task, path):
    with open(os.path.join(TASKS, task, "reference", path), encoding="utf-8") as f:
        return f.read()


def edit(text, old, new):
    """TEXT with OLD replaced by NEW; OLD must be there (a reference that
    changed must fail here, not give a silently different recording)."""
    if old not in text:
        raise SystemExit(f"generate.py: the reference no longer holds {old!r}")
    return text.replace(old, new, 1)


def tokens(text):
    return max(8, len(text) // 4 + 5)


class Recording:
    """The exchanges of one task, keyed as the replay server keys them."""

    def __init__(self, task):
        self.task = task
        self.lines = []
        self.turns = {}
        self.worker_ctx = {}

    def add(self, node, subject, schema, message, prompt):
        key = (node, subject)
        self.turns[key] = self.turns.get(key, 0) + 1
        turn = self.turns[key]
        content = message.get("content") or ""
        args = "".join(c["function"]["arguments"] for c in message.get("tool_calls", []))
        out = tokens(content + args)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        self.lines.append({
            "node": node, "subject": subject, "turn": turn, "endpoint": "recorded",
            "model": MODEL, "schema": schema, "status": 200,
            "content_type": "application/json",
            "response": {
                "id": f"chatcmpl-{self.task}-{node}-{subject or 'x'}-{turn}",
                "object": "chat.completion", "created": 1767225600, "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": out,
                          "total_tokens": prompt + out},
            },
        })
        return out

    def brainstorm(self, message, spec=None, context=0):
        """CONTEXT: tokens of an existing repository the prompt carries (a change)."""
        turn = self.turns.get(("brainstorm", ""), 0) + 1
        reply = {"message": message, "spec": spec}
        self.add("brainstorm", "", "brainstorm_reply",
                 {"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)},
                 900 + 250 * (turn - 1) + context)

    def plan(self, plan, context=0):
        self.add("architect", "", "plan",
                 {"role": "assistant", "content": json.dumps(plan, ensure_ascii=False)},
                 1900 + context)

    def _tool(self, subject, text, name, args):
        ctx = self.worker_ctx.setdefault(subject, {"prompt": 1500})
        msg = {"role": "assistant", "content": text, "tool_calls": [{
            "id": f"call_{self.turns.get(('worker', subject), 0) + 1}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}]}
        out = self.add("worker", subject, "", msg, ctx["prompt"])
        ctx["prompt"] += out + 350  # the reply and its observation stay in the conversation

    def work(self, subject, files, test_command, note, summary):
        """One worker: writes FILES (path -> content), runs the tests, submits."""
        self.worker_ctx[subject] = {"prompt": 1500}
        cmds = []
        for path, content in files.items():
            if not content.endswith("\n"):
                content += "\n"
            if "\nORCH_EOF\n" in content:
                raise SystemExit(f"generate.py: {path} holds the heredoc delimiter")
            d = os.path.dirname(path)
            cmds.append((f"mkdir -p {d} && " if d else "")
                        + f"cat > {path} <<'ORCH_EOF'\n{content}ORCH_EOF")
        self._tool(subject, note, "bash", {"command": "cd /workspace && " + "\n".join(cmds)})
        self._tool(subject, "Now the project's tests.", "bash",
                   {"command": f"cd /workspace && {test_command} 2>&1 | tail -n 25"})
        self._tool(subject, "Done.", "submit", {"summary": summary})
        self.last_diff = sum(len(c) for c in files.values())

    def review(self, subject, approve, summary, comments=()):
        verdict = {"verdict": "approve" if approve else "request_changes", "summary": summary,
                   "comments": list(comments)}
        self.add("reviewer", subject, "review",
                 {"role": "assistant", "content": json.dumps(verdict, ensure_ascii=False)},
                 1300 + self.last_diff // 4)

    def text(self):
        return "".join(json.dumps(l, ensure_ascii=True, sort_keys=False) + "\n"
                       for l in self.lines)


def spec(name, summary, users, features, language, stack, constraints, test_command):
    return {"name": name, "summary": summary, "users": users,
            "features": [{"name": n, "description": d, "acceptance": a}
                         for n, d, a in features],
            "language": language, "stack": stack, "constraints": constraints,
            "test_command": test_command}


def task(id_, title, goal, files, checks, deps=()):
    return {"id": id_, "title": title, "goal": goal, "files": files, "checks": checks,
            "deps": list(deps)}


# --- py-wordfreq: a question, then two tasks (the demo's project) ---

def py_wordfreq():
    r = Recording("py-wordfreq")
    r.brainstorm("A word counter, nice. Two things before I write the spec: what separates "
                 "words, apostrophes and hyphens included, and do digits count as word "
                 "characters? And may it use anything beyond Python's standard library?")
    r.brainstorm(
        "Thanks, that settles it. Here is the spec: a module with top_words() and the same "
        "module as a command, standard library only.",
        spec("wordfreq",
             "wordfreq.py, a Python 3 module at the top of the repository: top_words(text, n) "
             "returns the n most frequent words of a text, and `python3 wordfreq.py [-n N] "
             "FILE...` prints the most frequent words of files.",
             ["people who want to know which words a text uses most"],
             [("top_words", "top_words(text, n) -> [(word, count), ...]",
               ["words are maximal runs of str.isalnum characters, compared in lower case",
                "most frequent first, ties in alphabetical order",
                "fewer distinct words than n gives all of them; n = 0 gives []"]),
              ("command line", "python3 wordfreq.py [-n N] FILE...",
               ["counts the words of all files together and prints 'word count' lines, the "
                "top N (default 10)",
                "a file that cannot be read: a message on stderr and a non-zero exit status"])],
             "Python 3.11", ["standard library", "unittest"],
             ["standard library only", "files are read as UTF-8"], PY_TEST))
    r.plan({
        "summary": "One module, wordfreq.py: the word splitting and top_words() first, then "
                   "the command line (main() with argparse) in the same module. Tests with "
                   "unittest beside it.",
        "test_command": PY_TEST,
        "readme": "# wordfreq\n\nThe most frequent words of a text.\n\n    python3 wordfreq.py "
                  "-n 5 FILE...\n\nor, from Python, `wordfreq.top_words(text, n)`.\n\nTests: `"
                  + PY_TEST + "`\n",
        "files": [{"path": ".gitignore", "content": "__pycache__/\n"}],
        "tasks": [
            task("top-words", "top_words() and the word splitting",
                 "wordfreq.py with top_words(text, n): the words of text are the maximal runs "
                 "of characters for which str.isalnum() is true, lower-cased; return the n "
                 "most frequent as (word, count) tuples, most frequent first, ties "
                 "alphabetical. No command line yet.",
                 ["wordfreq.py", "test_wordfreq.py"],
                 ["top_words('b a b', 2) == [('b', 2), ('a', 1)]",
                  "ties are alphabetical; n = 0 gives []",
                  "\"don't\" is the two words don and t"]),
            task("cli", "the command line",
                 "python3 wordfreq.py [-n N] FILE...: count the words of all files together "
                 "(UTF-8) and print the top N (default 10) as 'word count' lines; a file that "
                 "cannot be read prints a message on stderr and exits non-zero.",
                 ["wordfreq.py", "test_cli.py"],
                 ["two files are counted together", "-n limits the lines",
                  "a missing file exits non-zero with a message on stderr"],
                 ["top-words"]),
        ],
    })
    full = ref("py-wordfreq", "wordfreq.py")
    core = full[:full.index("\n\ndef main(")] + "\n"
    core = edit(core, "import argparse\nimport sys\n", "")
    core = edit(core, '"""Word frequencies: top_words() and a command line (python3 wordfreq.py '
                      '-h)."""', '"""Word frequencies: top_words()."""')
    test_core = edit(ref("py-wordfreq", "test_wordfreq.py"),
                     '        self.assertEqual(top_words("b a b", 2), [("b", 2), ("a", 1)])\n',
                     '        self.assertEqual(top_words("b a b", 2), [("b", 2), ("a", 1)])\n\n'
                     '    def test_ties_and_case(self):\n'
                     '        self.assertEqual(top_words("B a c b A", 3), [("a", 2), ("b", 2), '
                     '("c", 1)])\n\n'
                     '    def test_separators(self):\n'
                     '        self.assertEqual(top_words("don\'t stop-2024", 5),\n'
                     '                         [("2024", 1), ("don", 1), ("stop", 1), ("t", 1)])\n'
                     '\n'
                     '    def test_zero_and_few(self):\n'
                     '        self.assertEqual(top_words("a b", 0), [])\n'
                     '        self.assertEqual(top_words("a", 5), [("a", 1)])\n')
    r.work("top-words", {"wordfreq.py": core, "test_wordfreq.py": test_core}, PY_TEST,
           "I'll write wordfreq.py with the splitting and top_words(), and its tests.",
           "wordfreq.py: words(), rank() and top_words(); 4 tests.")
    r.review("top-words", True, "top_words() does what the task asks: isalnum runs, lower "
             "case, count then alphabetical order; the tests cover ties, separators and n = 0.")
    test_cli = '''import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def run(*args):
    p = subprocess.run([sys.executable, os.path.join(HERE, "wordfreq.py"), *args],
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def file(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_files_together(self):
        a = self.file("a.txt", "red blue red")
        b = self.file("b.txt", "blue red green")
        code, out, _ = run(a, b)
        self.assertEqual(code, 0)
        self.assertEqual(out.splitlines(), ["red 3", "blue 2", "green 1"])

    def test_n(self):
        a = self.file("a.txt", "x y y z z z")
        self.assertEqual(run("-n", "2", a)[1].splitlines(), ["z 3", "y 2"])

    def test_missing_file(self):
        code, out, err = run(os.path.join(self.dir.name, "nope.txt"))
        self.assertNotEqual(code, 0)
        self.assertIn("nope.txt", err)


if __name__ == "__main__":
    unittest.main()
'''
    r.work("cli", {"wordfreq.py": full, "test_cli.py": test_cli}, PY_TEST,
           "I'll add main() with argparse to wordfreq.py and test it as a command.",
           "python3 wordfreq.py [-n N] FILE...; 3 tests of the command.")
    r.review("cli", True, "The command counts all files together, honours -n and fails "
             "cleanly on a missing file; the tests run it as a subprocess.")
    return r


# --- js-slugify: maxLength leaves a trailing separator (not solved) ---

def js_slugify():
    r = Recording("js-slugify")
    r.brainstorm(
        "Clear enough to write down. Here is the spec; say if anything is off.",
        spec("slugify", "slugify.js: a dependency-free Node.js library exporting slugify(text, "
             "options) that turns text into a URL slug.",
             ["Node.js developers who need URL slugs"],
             [("slugify", "slugify(text, {separator, maxLength})",
               ["lower case, accents dropped (NFD, combining marks removed)",
                "every run of characters other than a-z and 0-9 is one separator, '-' by "
                "default",
                "no separator at either end",
                "maxLength cuts the slug and drops a separator left at its end",
                "a TypeError when text is not a string"])],
             "JavaScript (Node.js 18+)", ["node:test", "node:assert"],
             ["no npm dependencies"], "node --test"))
    r.plan({
        "summary": "One CommonJS module, slugify.js, exporting slugify; tests under test/ run "
                   "by node --test.",
        "test_command": "node --test",
        "readme": "# slugify\n\nURL slugs for Node.js: `require('./slugify.js').slugify('Crème "
                  "brûlée!')` gives `creme-brulee`.\n\nTests: `node --test`\n",
        "files": [{"path": "package.json", "content": ref("js-slugify", "package.json")},
                  {"path": ".gitignore", "content": "node_modules/\n"}],
        "tasks": [task("slugify", "slugify()",
                       "slugify.js exporting slugify(text, options) as the spec says, with "
                       "tests in test/slugify.test.js.",
                       ["slugify.js", "test/slugify.test.js"],
                       ["slugify('Hello, World!') === 'hello-world'",
                        "slugify('Crème brûlée') === 'creme-brulee'",
                        "options.separator and options.maxLength",
                        "slugify(42) throws a TypeError"])],
    })
    lib = edit(ref("js-slugify", "slugify.js"),
               "    s = trimSep(s.slice(0, options.maxLength), sep);",
               "    s = s.slice(0, options.maxLength);")
    tests = edit(ref("js-slugify", "test/slugify.test.js"),
                 "  assert.equal(slugify('Hello, World!'), 'hello-world');\n});\n",
                 "  assert.equal(slugify('Hello, World!'), 'hello-world');\n});\n\n"
                 "test('accents and separator', () => {\n"
                 "  assert.equal(slugify('Crème brûlée'), 'creme-brulee');\n"
                 "  assert.equal(slugify('a b', { separator: '_' }), 'a_b');\n"
                 "});\n\n"
                 "test('maxLength', () => {\n"
                 "  assert.equal(slugify('abcdef', { maxLength: 3 }), 'abc');\n"
                 "});\n\n"
                 "test('not a string', () => {\n"
                 "  assert.throws(() => slugify(42), TypeError);\n"
                 "});\n")
    r.work("slugify", {"slugify.js": lib, "test/slugify.test.js": tests}, "node --test",
           "I'll write slugify.js and its tests.", "slugify.js with separator and maxLength; "
           "4 tests.")
    r.review("slugify", True, "Lower case, NFD accent removal, one separator per run, no "
             "separator at the ends, maxLength and the TypeError are there and tested.")
    return r


# --- go-wordwrap: straight through ---

def go_wordwrap():
    r = Recording("go-wordwrap")
    test_cmd = "go test -v ./..."
    r.brainstorm(
        "The idea names everything I need. Here is the spec.",
        spec("wordwrap", "A Go module `wordwrap` with func Wrap(text string, width int) "
             "[]string that fills lines greedily with the words of a text.",
             ["Go programs that print text in columns"],
             [("Wrap", "Wrap(text, width) []string",
               ["words are strings.Fields of the text, joined by single spaces",
                "each line holds as many words as fit in width runes",
                "a word longer than width stands alone on its line",
                "empty or blank text gives no lines; a width below 1 counts as 1"])],
             "Go 1.19", ["standard library", "testing"], ["no modules from outside the "
                                                           "standard library"], test_cmd))
    r.plan({
        "summary": "Package wordwrap at the module's root: wrap.go with Wrap and its table "
                   "tests in wrap_test.go.",
        "test_command": test_cmd,
        "readme": "# wordwrap\n\n`wordwrap.Wrap(text, width)` fills lines greedily.\n\nTests: `"
                  + test_cmd + "`\n",
        "files": [{"path": "go.mod", "content": ref("go-wordwrap", "go.mod")},
                  {"path": "doc.go", "content": "// Package wordwrap fills lines greedily "
                                                "with the words of a text.\npackage wordwrap\n"}],
        "tasks": [task("wrap", "Wrap()",
                       "wrap.go with func Wrap(text string, width int) []string as the spec "
                       "says; widths count runes.",
                       ["wrap.go", "wrap_test.go"],
                       ["Wrap(\"a bb ccc\", 4) is [\"a bb\", \"ccc\"]",
                        "a long word stands alone", "runes, not bytes", "blank text: no lines"])],
    })
    wrap = edit(ref("go-wordwrap", "wrap.go"), "// Package wordwrap fills lines greedily with "
                "the words of a text.\npackage wordwrap", "package wordwrap")
    tests = edit(ref("go-wordwrap", "wrap_test.go"), "\t\tt.Fatalf(\"got %q, want %q\", got, "
                 "want)\n\t}\n}\n",
                 "\t\tt.Fatalf(\"got %q, want %q\", got, want)\n\t}\n}\n\n"
                 "func TestWrapEdges(t *testing.T) {\n"
                 "\tif got := Wrap(\"  \\n \", 5); len(got) != 0 {\n"
                 "\t\tt.Fatalf(\"blank text: got %q\", got)\n\t}\n"
                 "\tif got := Wrap(\"abcdefgh ij\", 3); !reflect.DeepEqual(got, []string{"
                 "\"abcdefgh\", \"ij\"}) {\n"
                 "\t\tt.Fatalf(\"long word: got %q\", got)\n\t}\n"
                 "\tif got := Wrap(\"héé hé\", 6); !reflect.DeepEqual(got, []string{\"héé hé\"})"
                 " {\n"
                 "\t\tt.Fatalf(\"runes: got %q\", got)\n\t}\n}\n")
    r.work("wrap", {"wrap.go": wrap, "wrap_test.go": tests}, test_cmd,
           "I'll write wrap.go and its tests.", "Wrap with rune widths; 2 tests.")
    r.review("wrap", True, "Greedy filling with rune counts, long words alone, blank input "
             "gives nil; the tests cover each.")
    return r


# --- sql-orgchart: a failing first attempt, then right ---

SQL_TESTS = '''"""Tests of the views of orgchart.sql, through the sqlite3 command-line tool."""
import json
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def sql(db, text):
    p = subprocess.run(["sqlite3", "-bail", "-json", db], input=text, capture_output=True,
                       text=True)
    if p.returncode:
        raise AssertionError(p.stderr)
    return [tuple(r.values()) for r in json.loads(p.stdout)] if p.stdout.strip() else []


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


class OrgChartTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "org.db")
        sql(self.db, read("schema.sql") + read("orgchart.sql")
            + "INSERT INTO employees VALUES (1, 'Ada', NULL), (2, 'Bob', 1), (3, 'Cy', 2), "
              "(4, 'Di', 6), (6, 'Fay', NULL);")

    def test_chain(self):
        self.assertEqual(sql(self.db, "SELECT * FROM chain ORDER BY 1, 3;"),
                         [(2, 1, 1), (3, 2, 1), (3, 1, 2), (4, 6, 1)])

    def test_team_size_counts_everyone_below(self):
        self.assertEqual(sql(self.db, "SELECT * FROM team_size ORDER BY 1;"),
                         [(1, 2), (2, 1), (6, 1)])

    def test_org_path(self):
        self.assertEqual(dict(sql(self.db, "SELECT * FROM org_path;")),
                         {1: "Ada", 2: "Ada > Bob", 3: "Ada > Bob > Cy", 4: "Fay > Di",
                          6: "Fay"})


if __name__ == "__main__":
    unittest.main()
'''


def sql_orgchart():
    r = Recording("sql-orgchart")
    r.brainstorm("Recursive views, good. Before the spec: can there be cycles in the "
                 "manager chain, and is there always exactly one person at the top?")
    r.brainstorm(
        "Thanks. Here is the spec: the table in schema.sql and three views in orgchart.sql.",
        spec("orgchart", "SQLite views over employees(id, name, manager_id): the chain of "
             "managers above everyone, the size of each manager's team, and each person's "
             "path from the top.",
             ["people who query the staff database"],
             [("chain", "chain(employee_id, manager_id, depth)",
               ["a row for every employee and every manager above them, depth 1 for the "
                "direct manager"]),
              ("team_size", "team_size(manager_id, reports)",
               ["everyone below a manager, direct and indirect; people without reports are "
                "not listed"]),
              ("org_path", "org_path(employee_id, path)",
               ["names from the top down joined with ' > '", "several trees are fine"])],
             "SQL (SQLite 3.40)", ["sqlite3", "python3 unittest"], ["plain SQL, no dot-commands",
                                                                  "no cycles in the data"],
             PY_TEST))
    r.plan({
        "summary": "schema.sql holds the employees table; orgchart.sql the three views with "
                   "recursive CTEs; Python unittest drives the sqlite3 tool.",
        "test_command": PY_TEST,
        "readme": "# orgchart\n\n    sqlite3 org.db < schema.sql\n    sqlite3 org.db < "
                  "orgchart.sql\n\nTests: `" + PY_TEST + "`\n",
        "files": [{"path": ".gitignore", "content": "*.db\n__pycache__/\n"}],
        "tasks": [task("views", "schema.sql and the three views",
                       "schema.sql with the employees table, orgchart.sql with the views chain, "
                       "team_size and org_path as the spec says, and tests that run them with "
                       "the sqlite3 tool.",
                       ["schema.sql", "orgchart.sql", "test_orgchart.py"],
                       ["chain lists every manager above with its depth",
                        "team_size counts indirect reports too", "org_path of several trees"])],
    })
    good = ref("sql-orgchart", "orgchart.sql")
    bad = edit(good, "CREATE VIEW team_size(manager_id, reports) AS\n"
                     "SELECT manager_id, count(*) FROM chain GROUP BY manager_id;",
               "CREATE VIEW team_size(manager_id, reports) AS\n"
               "SELECT manager_id, count(*) FROM employees WHERE manager_id IS NOT NULL "
               "GROUP BY manager_id;")
    files = {"schema.sql": ref("sql-orgchart", "schema.sql"), "orgchart.sql": bad,
             "test_orgchart.py": SQL_TESTS}
    r.work("views", files, PY_TEST, "I'll write the schema, the three views and their tests.",
           "The views are written; team_size's test fails, but it counts direct reports, "
           "which is what a team is.")
    files = dict(files, **{"orgchart.sql": good})
    r.work("views", files, PY_TEST, "The last attempt counted only direct reports; team_size "
           "must count everyone below, so it is built on chain this time.",
           "schema.sql and the three views; team_size counts the chain; 3 tests pass.")
    r.review("views", True, "chain, team_size (on chain, so indirect reports count) and "
             "org_path are right and tested on two trees.")
    return r


# --- c-base64: changes requested, then approved ---

C_MAKEFILE = '''CFLAGS ?= -std=c11 -Wall -Wextra -O2 -g
TESTS := $(patsubst %.c,%,$(wildcard test_*.c))
SRC := $(filter-out test_%.c eval_%.c,$(wildcard *.c))

.PHONY: test clean
test: $(TESTS)
\t@for t in $(TESTS); do ./$$t || exit 1; done; echo "$(words $(TESTS)) passed, 0 failed"

test_%: test_%.c $(SRC)
\t$(CC) $(CFLAGS) -o $@ $^

clean:
\trm -f $(TESTS)
'''


def c_base64():
    r = Recording("c-base64")
    r.brainstorm(
        "The idea is precise; here is the spec.",
        spec("base64", "b64.h and b64.c: RFC 4648 base64 with '=' padding in C11: "
             "b64_encode and a strict b64_decode.",
             ["C programs that need base64"],
             [("encode", "char *b64_encode(const unsigned char *data, size_t len)",
               ["a new NUL-terminated string, \"\" for len 0", "NULL only without memory"]),
              ("strict decode", "unsigned char *b64_decode(const char *text, size_t *out_len)",
               ["NULL for a length that is not a multiple of 4, a character outside the "
                "alphabet, '=' anywhere but the last one or two places",
                "NULL when the unused bits of the last character are not zero",
                "the empty text gives a non-NULL buffer and *out_len 0"])],
             "C11", ["standard library", "make"], ["the caller frees with free()"],
             "make test"))
    r.plan({
        "summary": "b64.c implements both directions behind b64.h; test_*.c programs are "
                   "built and run by make test.",
        "test_command": "make test",
        "readme": "# base64\n\n`b64_encode` and a strict `b64_decode` (b64.h).\n\nTests: `make "
                  "test`\n",
        "files": [{"path": "Makefile", "content": C_MAKEFILE},
                  {"path": ".gitignore", "content": "test_*\n!test_*.c\n*.o\n"}],
        "tasks": [task("b64", "encode and strict decode",
                       "b64.h and b64.c with b64_encode and b64_decode as the spec says, and "
                       "test_b64.c.",
                       ["b64.h", "b64.c", "test_b64.c"],
                       ["round trips of 0 to 3 bytes", "bad length, bad character, bad "
                        "padding give NULL", "non-zero leftover bits give NULL"])],
    })
    good = ref("c-base64", "b64.c")
    lax = edit(good, "\t\t/* the bits of the last character that fall outside the bytes must "
                     "be zero */\n\t\tif (last && pad == 1 && (v[2] & 3))\n\t\t\tgoto bad;\n"
                     "\t\tif (last && pad == 2 && (v[1] & 15))\n\t\t\tgoto bad;\n", "")
    t1 = ref("c-base64", "test_b64.c")
    r.work("b64", {"b64.h": ref("c-base64", "b64.h"), "b64.c": lax, "test_b64.c": t1},
           "make test", "I'll write b64.h, b64.c and a test program.",
           "b64_encode and b64_decode with padding checks; test_b64 passes.")
    r.review("b64", False, "Encoding is right, but decoding is not strict about the last "
             "quantum: 'Zh==' decodes although the unused bits of 'h' are not zero.",
             [{"file": "b64.c", "comment": "Reject a last character whose bits beyond the "
               "decoded bytes are not zero (the 4 low bits with '==', the 2 low bits with "
               "'='), and test it: b64_decode(\"Zh==\") and b64_decode(\"Zm9=\") must be "
               "NULL."}])
    t2 = edit(t1, '\tassert(b64_decode("Zg=", &n) == NULL);\n',
              '\tassert(b64_decode("Zg=", &n) == NULL);\n'
              '\tassert(b64_decode("Zh==", &n) == NULL);\n'
              '\tassert(b64_decode("Zm9=", &n) == NULL);\n')
    r.work("b64", {"b64.c": good, "test_b64.c": t2}, "make test",
           "The reviewer is right: I'll check the leftover bits of the last character.",
           "The decoder rejects non-zero leftover bits; tested with Zh== and Zm9=.")
    r.review("b64", True, "The last quantum is now checked and tested; the decoder is strict "
             "as the spec asks.")
    return r


# --- chg-py-tasklog-emptyconfig: a change to an existing repository ---

def chg_tasklog_emptyconfig():
    t = "chg-py-tasklog-emptyconfig"
    test_cmd = "python3 -m unittest discover -s tests -v"
    # the repository's selection the brainstorm and the architect carry: 32,000 bytes
    # (ORCH_CHANGE_CONTEXT) at 4 bytes a token
    ctx = 8000
    r = Recording(t)
    r.brainstorm(
        "I read tasklog/config.py: load() takes raw.get(\"tasklog\") as the settings table, which "
        "is None for an empty file or one without [tasklog], and then calls .items() on it. "
        "AGENTS.md gives the test command. Here is the change.",
        spec("tasklog",
             "Fix the crash of every command when the config file is empty or has no [tasklog] "
             "table: tasklog/config.py's load() treats a missing [tasklog] table as empty, so "
             "the defaults apply and the tables the file has are still read; a [tasklog] that "
             "is not a table is a ConfigError.",
             ["people who use tasklog with a config file"],
             [("empty config file", "load() in tasklog/config.py",
               ["an empty file, or one with only blank lines and comments, gives the defaults",
                "a file with only [report] or [rates] gives the defaults for [tasklog] and "
                "honours its tables",
                "a file that is not valid TOML still exits 2 with a message naming the file",
                "a regression test in tests/test_config.py"])],
             "Python 3.11", ["standard library", "tomllib", "unittest"],
             ["no new dependencies", "errors a user can fix are one line on stderr, never a "
              "traceback"], test_cmd), context=ctx)
    r.plan({
        "summary": "One task in tasklog/config.py: load() reads the [tasklog] table as {} when "
                   "the file has none, and refuses one that is not a table; regression tests in "
                   "tests/test_config.py.",
        "test_command": test_cmd,
        "tasks": [task("fix-empty", "an empty config file means the defaults",
                       "In tasklog/config.py, load(): take raw.get('tasklog', {}) and raise "
                       "ConfigError naming the file when it is not a dict; add tests for an empty "
                       "file, a comments-only file, a file with only [report], and a [tasklog] "
                       "that is not a table to tests/test_config.py.",
                       ["tasklog/config.py", "tests/test_config.py"],
                       ["an empty config file gives the defaults",
                        "a file with only [report] keeps its report settings",
                        "tasklog = 3 is a ConfigError"])],
    }, context=ctx)
    r.work("fix-empty", {"tasklog/config.py": ref(t, "tasklog/config.py"),
                           "tests/test_config.py": ref(t, "tests/test_config.py")}, test_cmd,
           "I'll make load() treat a missing [tasklog] table as empty and add the regression "
           "tests.",
           "load(): a missing [tasklog] table is {}, one that is not a table a ConfigError; "
           "4 regression tests.")
    r.review("fix-empty", True, "The fix is where the crash was, keeps the other tables read "
             "and the invalid TOML error as it was; the new tests cover the empty, comment-only "
             "and [report]-only files. The baseline's 95 tests still pass.")
    return r


RECORDINGS = [py_wordfreq, js_slugify, go_wordwrap, sql_orgchart, c_base64,
              chg_tasklog_emptyconfig]


def files():
    out = {"models.json": json.dumps(MODELS, indent=2) + "\n",
           "demo.json": json.dumps(DEMO, indent=2) + "\n"}
    for make in RECORDINGS:
        r = make()
        out[r.task + ".jsonl"] = r.text()
    return out


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in files().items():
        path = os.path.join(HERE, name)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == text
            except OSError:
                same = False
            if not same:
                stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if check and stale:
        print("eval/recordings: not what generate.py writes: " + ", ".join(stale)
              + " (run eval/recordings/generate.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
