"""Acceptance tests of chg-py-tasklog-emptyconfig, through the command line."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class EmptyConfig(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.data = os.path.join(self.tmp.name, "log.json")
        self.config = os.path.join(self.tmp.name, "config.toml")

    def cli(self, *args, config=True):
        env = dict(os.environ, HOME=self.tmp.name, TASKLOG_NOW="2024-03-08 18:00")
        for k in ("TASKLOG_CONFIG", "TASKLOG_DATA"):
            env.pop(k, None)
        pre = ["--data", self.data] + (["--config", self.config] if config else [])
        return subprocess.run([sys.executable, "-m", "tasklog", *pre, *args], cwd=HERE, env=env,
                              capture_output=True, text=True, timeout=60)

    def ok(self, *args, **kw):
        p = self.cli(*args, **kw)
        self.assertEqual(p.returncode, 0, f"tasklog {' '.join(args)}: {p.stderr}")
        self.assertNotIn("Traceback", p.stderr)
        return p.stdout

    def write(self, text, path=None):
        with open(path or self.config, "w", encoding="utf-8") as f:
            f.write(text)

    def test_empty_file_means_defaults(self):
        for text in ("", "\n\n  \n", "# nothing set yet\n\n# another comment\n"):
            self.write(text)
            out = self.ok("start", "--at", "17:00")
            self.assertIn("misc", out, repr(text))
            self.ok("stop")
            self.ok("log")
            self.ok("report")

    def test_default_config_file_empty(self):
        folder = os.path.join(self.tmp.name, ".config", "tasklog")
        os.makedirs(folder)
        self.write("", os.path.join(folder, "config.toml"))
        self.ok("add", "acme", "2024-03-04 09:00", "--for", "1h", config=False)
        out = self.ok("log", config=False)
        self.assertIn("acme", out)

    def test_only_report_table(self):
        self.write('[report]\nformat = "json"\nby = "day"\n')
        self.ok("add", "acme", "2024-03-04 09:00", "--for", "1h")
        data = json.loads(self.ok("report"))
        self.assertEqual(data["by"], "day")
        self.assertEqual(data["rows"][0]["key"], "2024-03-04")
        self.assertIn("misc", self.ok("config"))

    def test_only_rates_table(self):
        self.write("# rates only\n[rates]\nacme = 100\n")
        self.ok("add", "acme", "2024-03-04 09:00", "--for", "1h30m")
        out = self.ok("invoice", "--from", "2024-03-01", "--to", "2024-03-31")
        self.assertIn("150.00", out)

    def test_tasklog_table_still_honoured(self):
        self.write('[tasklog]\ndefault_project = "inbox"\n')
        self.assertIn("inbox", self.ok("start"))

    def test_invalid_toml_still_an_error(self):
        for text in ("[tasklog\n", "rounding = \n", "[report]\nformat = pdf\n"):
            self.write(text)
            p = self.cli("log")
            self.assertEqual(p.returncode, 2, f"{text!r}: {p.stdout}{p.stderr}")
            self.assertIn("config.toml", p.stderr)
            self.assertNotIn("Traceback", p.stderr)

    def test_wrong_settings_still_errors(self):
        self.write('[report]\nformat = "pdf"\n')
        p = self.cli("log")
        self.assertEqual(p.returncode, 2)
        self.assertNotIn("Traceback", p.stderr)


if __name__ == "__main__":
    unittest.main()
