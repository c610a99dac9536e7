"""Acceptance tests of py-wordfreq: top_words() and the command line."""
import os
import subprocess
import sys
import tempfile
import unittest

import wordfreq


def pairs(result):
    return [tuple(p) for p in result]


class TopWords(unittest.TestCase):
    def test_counts_case_insensitively_most_frequent_first(self):
        text = "Hello, hello world! World? world."
        self.assertEqual(pairs(wordfreq.top_words(text, 5)), [("world", 3), ("hello", 2)])

    def test_ties_are_alphabetical(self):
        text = "pear apple fig apple pear fig kiwi"
        self.assertEqual(pairs(wordfreq.top_words(text, 3)), [("apple", 2), ("fig", 2), ("pear", 2)])

    def test_n_limits_and_zero(self):
        text = "a a a b b c"
        self.assertEqual(pairs(wordfreq.top_words(text, 1)), [("a", 3)])
        self.assertEqual(pairs(wordfreq.top_words(text, 0)), [])
        self.assertEqual(pairs(wordfreq.top_words(text, 10)), [("a", 3), ("b", 2), ("c", 1)])

    def test_separators_digits_and_accents(self):
        text = "Don't stop: 2024 is the year-of Élan, élan 2024 don"
        got = dict(pairs(wordfreq.top_words(text, 100)))
        self.assertEqual(got.get("don"), 2)
        self.assertEqual(got.get("t"), 1)
        self.assertEqual(got.get("2024"), 2)
        self.assertEqual(got.get("élan"), 2)
        self.assertEqual(got.get("year"), 1)
        self.assertNotIn("don't", got)
        self.assertNotIn("year-of", got)

    def test_empty_text(self):
        self.assertEqual(pairs(wordfreq.top_words("", 5)), [])
        self.assertEqual(pairs(wordfreq.top_words(" ,.;!? ", 5)), [])


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_cli(self, *args):
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run([sys.executable, os.path.join(here, "wordfreq.py"), *args],
                              capture_output=True, text=True, timeout=30)

    def lines(self, out):
        return [tuple(l.split()) for l in out.splitlines() if l.strip()]

    def test_counts_over_all_files(self):
        a = self.write("a.txt", "the cat and the hat\n")
        b = self.write("b.txt", "The end. THE END\n")
        p = self.run_cli("-n", "2", a, b)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.lines(p.stdout), [("the", "4"), ("end", "2")])

    def test_default_is_ten(self):
        words = " ".join(f"w{i} " * (i + 1) for i in range(15))
        a = self.write("many.txt", words)
        p = self.run_cli(a)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = self.lines(p.stdout)
        self.assertEqual(len(got), 10)
        self.assertEqual(got[0], ("w14", "15"))

    def test_unreadable_file(self):
        p = self.run_cli(os.path.join(self.dir.name, "missing.txt"))
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip(), "an error message on stderr")


if __name__ == "__main__":
    unittest.main()
