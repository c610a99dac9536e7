import os
import tempfile
import unittest
from unittest import mock

from tasklog import config


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "config.toml")
        patcher = mock.patch.dict(os.environ, {"HOME": self.tmp.name})
        patcher.start()
        self.addCleanup(patcher.stop)
        os.environ.pop("TASKLOG_CONFIG", None)

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def test_no_default_file_means_defaults(self):
        cfg = config.load()
        self.assertEqual(cfg.week_start, 0)
        self.assertEqual(cfg.default_project, "misc")
        self.assertIsNone(cfg.path)
        self.assertTrue(cfg.data_path().startswith(self.tmp.name))

    def test_named_file_must_exist(self):
        with self.assertRaises(config.ConfigError):
            config.load(os.path.join(self.tmp.name, "nope.toml"))

    def test_settings(self):
        self.write('[tasklog]\ndata_file = "~/h.json"\nweek_start = "Sunday"\n'
                   'default_project = "inbox"\nrounding = 15\n\n[report]\nformat = "markdown"\nby = "day"\n')
        cfg = config.load(self.path)
        self.assertEqual(cfg.data_path(), os.path.join(self.tmp.name, "h.json"))
        self.assertEqual(cfg.week_start, 6)
        self.assertEqual(cfg.default_project, "inbox")
        self.assertEqual(cfg.rounding, 15)
        self.assertEqual(cfg.report_format, "markdown")
        self.assertEqual(cfg.report_by, "day")
        self.assertEqual(cfg.path, self.path)

    def test_env_names_the_file(self):
        self.write('[tasklog]\nrounding = 5\n')
        with mock.patch.dict(os.environ, {"TASKLOG_CONFIG": self.path}):
            self.assertEqual(config.load().rounding, 5)

    def test_bad_settings(self):
        for text in ('[tasklog]\nweek_start = "someday"\n', '[tasklog]\nrounding = 90\n',
                     '[tasklog]\nrounding = "5"\n', '[tasklog]\ncolour = "red"\n',
                     '[tasklog]\ndefault_project = "two words"\n', '[tasklog]\n[report]\nformat = "pdf"\n',
                     '[tasklog]\nrounding = 5\n[reports]\nby = "day"\n', '[tasklog]\nrounding = true\n'):
            self.write(text)
            with self.assertRaises(config.ConfigError, msg=text):
                config.load(self.path)

    def test_empty_file_means_defaults(self):
        for text in ("", "\n \n", "# only a comment\n"):
            self.write(text)
            cfg = config.load(self.path)
            self.assertEqual((cfg.default_project, cfg.rounding), ("misc", 0), repr(text))

    def test_tables_without_tasklog(self):
        self.write('[report]\nby = "week"\n')
        self.assertEqual(config.load(self.path).report_by, "week")
        self.write('[rates]\nacme = 10\n')
        self.assertEqual(config.load(self.path).rates, {"acme": 1000})

    def test_tasklog_not_a_table(self):
        self.write("tasklog = 3\n")
        with self.assertRaises(config.ConfigError):
            config.load(self.path)

    def test_invalid_toml(self):
        self.write("[tasklog\nrounding = 5\n")
        with self.assertRaises(config.ConfigError) as cm:
            config.load(self.path)
        self.assertIn("not valid TOML", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
