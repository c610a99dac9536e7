"""Running tasklog in-process against a temporary log and config."""
import io
import json
import os
import tempfile
import unittest
from unittest import mock

from tasklog.cli import main


class CliCase(unittest.TestCase):
    """A test with its own folder, log file and clock (TASKLOG_NOW)."""

    NOW = "2024-03-06 17:00"  # a Wednesday

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        self.data = os.path.join(self.dir, "log.json")
        self.config = os.path.join(self.dir, "config.toml")
        env = {"HOME": self.dir, "TASKLOG_NOW": self.NOW}
        patcher = mock.patch.dict(os.environ, env)
        patcher.start()
        self.addCleanup(patcher.stop)
        for k in ("TASKLOG_CONFIG", "TASKLOG_DATA"):
            os.environ.pop(k, None)

    def write_config(self, text):
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(text)

    def run_cli(self, *argv, config=False, now=None):
        """(status, stdout, stderr) of tasklog ARGV with --data (and --config
        when CONFIG)."""
        pre = ["--data", self.data] + (["--config", self.config] if config else [])
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, {"TASKLOG_NOW": now or self.NOW}):
            with mock.patch("sys.stderr", err), mock.patch("sys.stdout", out):
                code = main(pre + list(argv), out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv, **kw):
        code, out, err = self.run_cli(*argv, **kw)
        self.assertEqual(code, 0, f"tasklog {' '.join(argv)}: {err}")
        return out

    def fails(self, *argv, code=1, **kw):
        got, out, err = self.run_cli(*argv, **kw)
        self.assertEqual(got, code, f"tasklog {' '.join(argv)}: {out}{err}")
        self.assertTrue(err.strip(), "an error message")
        self.assertNotIn("Traceback", err)
        return err

    def add(self, project, start, end, *task, tags=()):
        argv = ["add", project, start, *task, "--end", end]
        for t in tags:
            argv += ["--tag", t]
        return int(self.ok(*argv).strip())

    def stored(self):
        with open(self.data, encoding="utf-8") as f:
            return json.load(f)
