import json
import os

from tests.helpers import CliCase


class StartStop(CliCase):
    def test_start_status_stop(self):
        out = self.ok("start", "acme", "write", "tests", "--tag", "dev", now="2024-03-06 09:00")
        self.assertIn("started 1 acme: write tests at 09:00", out)
        out = self.ok("status", now="2024-03-06 09:45")
        self.assertIn("1 acme: write tests since 09:00 (45m) #dev", out)
        out = self.ok("stop", now="2024-03-06 10:10")
        self.assertIn("after 1h10m", out)
        self.assertIn("nothing is running", self.ok("status"))
        e = self.stored()["entries"][0]
        self.assertEqual((e["start"], e["end"]), ("2024-03-06 09:00", "2024-03-06 10:10"))

    def test_start_stops_the_running_one(self):
        self.ok("start", "a", now="2024-03-06 09:00")
        out = self.ok("start", "b", now="2024-03-06 09:30")
        self.assertIn("stopped 1 a after 30m", out)
        entries = self.stored()["entries"]
        self.assertEqual(entries[0]["end"], "2024-03-06 09:30")
        self.assertIsNone(entries[1]["end"])

    def test_start_at_and_default_project(self):
        self.ok("start", "--at=-20m", now="2024-03-06 09:00")
        e = self.stored()["entries"][0]
        self.assertEqual((e["project"], e["start"]), ("misc", "2024-03-06 08:40"))

    def test_errors(self):
        self.fails("stop")
        self.fails("start", "x", "--at", "2024-03-07 09:00")
        self.ok("start", "a", "--at", "16:00")
        self.fails("stop", "--at", "15:00")
        self.fails("start", "b", "--at", "15:00")
        self.assertEqual(self.run_cli("status", "--exit-code")[0], 0)

    def test_status_exit_code(self):
        self.assertEqual(self.run_cli("status", "--exit-code")[0], 1)


class AddLogEditDelete(CliCase):
    def test_add_prints_ids(self):
        self.assertEqual(self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00", "kickoff"), 1)
        self.assertEqual(int(self.ok("add", "acme", "2024-03-04 10:00", "--for", "1h30m").strip()), 2)
        entries = self.stored()["entries"]
        self.assertEqual(entries[1]["end"], "2024-03-04 11:30")

    def test_add_needs_an_end(self):
        self.fails("add", "acme", "2024-03-04 09:00")
        self.fails("add", "acme", "2024-03-04 09:00", "--end", "2024-03-04 10:00", "--for", "1h")
        self.fails("add", "acme", "2024-03-04 09:00", "--end", "2024-03-04 08:00")

    def test_overlaps_refused_unless_allowed(self):
        self.add("a", "2024-03-04 09:00", "2024-03-04 10:00")
        self.fails("add", "b", "2024-03-04 09:30", "--end", "2024-03-04 10:30")
        self.ok("add", "b", "2024-03-04 09:30", "--end", "2024-03-04 10:30", "--allow-overlap")
        code, out, _ = self.run_cli("check")
        self.assertEqual(code, 1)
        self.assertIn("entries 1 (a) and 2 (b) overlap", out)

    def test_bad_arguments_are_usage_errors(self):
        for argv in (["add", "two words", "09:00", "--end", "10:00"], ["add", "a", "9am", "--end", "10:00"],
                     ["log", "--from", "someday"], ["frobnicate"]):
            code, _, err = self.run_cli(*argv)
            self.assertEqual(code, 2, argv)
            self.assertNotIn("Traceback", err)

    def test_log_filters(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00", "design", tags=["meeting"])
        self.add("home", "2024-03-05 09:00", "2024-03-05 09:30", "taxes")
        self.add("acme/site", "2024-03-06 09:00", "2024-03-06 11:00", "css")
        out = self.ok("log")
        self.assertIn("3 entries, 3h30m", out)
        data = json.loads(self.ok("log", "--json", "--project", "acme"))
        self.assertEqual([e["id"] for e in data], [1, 3])
        self.assertEqual(data[1]["minutes"], 120)
        data = json.loads(self.ok("log", "--json", "--from", "2024-03-05", "--to", "2024-03-05"))
        self.assertEqual([e["task"] for e in data], ["taxes"])
        data = json.loads(self.ok("log", "--json", "--tag", "meeting"))
        self.assertEqual([e["id"] for e in data], [1])
        data = json.loads(self.ok("log", "--json", "--week"))
        self.assertEqual(len(data), 3)
        self.assertIn("no entries", self.ok("log", "--from", "2024-04-01"))
        self.fails("log", "--from", "2024-03-06", "--to", "2024-03-01")

    def test_edit(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00", "design", tags=["meeting"])
        self.ok("edit", "1", "--project", "acme/site", "--end", "2024-03-04 10:30", "--task", "new",
                "--tag", "dev", "--untag", "meeting")
        e = self.stored()["entries"][0]
        self.assertEqual((e["project"], e["end"], e["task"], e["tags"]),
                         ("acme/site", "2024-03-04 10:30", "new", ["dev"]))
        self.fails("edit", "9", "--task", "x")
        self.fails("edit", "1", "--start", "2024-03-04 11:00")

    def test_delete(self):
        self.add("a", "2024-03-04 09:00", "2024-03-04 10:00")
        self.add("a", "2024-03-04 10:00", "2024-03-04 11:00")
        self.fails("delete", "1", "7")
        self.assertEqual(len(self.stored()["entries"]), 2)
        self.ok("delete", "1", "2")
        self.assertEqual(self.stored()["entries"], [])


class Reports(CliCase):
    def fill(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:07", "design", tags=["meeting"])
        self.add("acme", "2024-03-05 09:00", "2024-03-05 09:52", "review", tags=["meeting", "dev"])
        self.add("home", "2024-03-05 18:00", "2024-03-05 18:20", "taxes")

    def test_report_json(self):
        self.fill()
        data = json.loads(self.ok("report", "--format", "json"))
        self.assertEqual(data["rows"], [{"key": "acme", "minutes": 119, "entries": 2},
                                        {"key": "home", "minutes": 20, "entries": 1}])
        self.assertEqual(data["total_minutes"], 139)

    def test_report_by_tag_and_rounding(self):
        self.fill()
        data = json.loads(self.ok("report", "--format", "json", "--by", "tag", "--rounding", "15"))
        self.assertEqual({r["key"]: r["minutes"] for r in data["rows"]},
                         {"dev": 45, "meeting": 60 + 45, "(untagged)": 15})
        out = self.ok("report", "--by", "tag")
        self.assertIn("counts under each", out)

    def test_report_table_and_markdown(self):
        self.fill()
        out = self.ok("report")
        self.assertIn("acme", out)
        self.assertIn("1h59m", out)
        self.assertIn("total", out)
        md = self.ok("report", "--format", "markdown", "--by", "day")
        self.assertTrue(md.startswith("| day | time | entries |"))

    def test_config_sets_report_defaults(self):
        self.fill()
        self.write_config('[tasklog]\nrounding = 30\n[report]\nformat = "json"\nby = "day"\n')
        data = json.loads(self.ok("report", config=True))
        self.assertEqual(data["by"], "day")
        self.assertEqual(data["rows"][0], {"key": "2024-03-04", "minutes": 60, "entries": 1})

    def test_projects(self):
        self.assertIn("no projects yet", self.ok("projects"))
        self.fill()
        out = self.ok("projects")
        self.assertIn("home", out)


class Export(CliCase):
    def test_export_json_to_stdout_and_file(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00", "design")
        self.ok("start", "home")
        data = json.loads(self.ok("export"))
        self.assertEqual([e["id"] for e in data], [1])
        target = os.path.join(self.dir, "out.json")
        code, out, err = self.run_cli("export", "--output", target)
        self.assertEqual(code, 0, err)
        self.assertIn("exported 1 entries", err)
        with open(target) as f:
            self.assertEqual(json.load(f), data)

    def test_export_filters(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00")
        self.add("home", "2024-03-05 09:00", "2024-03-05 10:00")
        data = json.loads(self.ok("export", "--project", "home"))
        self.assertEqual([e["project"] for e in data], ["home"])

    def test_export_markdown(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00", "a | b")
        out = self.ok("export", "--format", "markdown")
        self.assertIn("a \\| b", out)

    def test_unknown_format(self):
        code, _, err = self.run_cli("export", "--format", "xml")
        self.assertEqual(code, 2)


class Settings(CliCase):
    def test_config_command(self):
        self.write_config('[tasklog]\nweek_start = "sunday"\ndefault_project = "inbox"\n')
        out = self.ok("config", config=True)
        self.assertIn("sunday", out)
        self.assertIn("inbox", out)
        self.assertIn(self.config, out)

    def test_data_file_from_config_and_env(self):
        other = os.path.join(self.dir, "other.json")
        self.write_config(f'[tasklog]\ndata_file = "{other}"\n')
        from tasklog.cli import main
        import io
        out, err = io.StringIO(), io.StringIO()
        code = main(["--config", self.config, "add", "a", "2024-03-04 09:00", "--for", "1h"], out, err)
        self.assertEqual(code, 0, err.getvalue())
        self.assertTrue(os.path.exists(other))
        env_file = os.path.join(self.dir, "env.json")
        os.environ["TASKLOG_DATA"] = env_file
        try:
            code = main(["--config", self.config, "add", "a", "2024-03-04 10:00", "--for", "1h"], out, err)
        finally:
            del os.environ["TASKLOG_DATA"]
        self.assertEqual(code, 0, err.getvalue())
        self.assertTrue(os.path.exists(env_file))

    def test_bad_config_is_reported(self):
        self.write_config('[tasklog]\nweek_start = "someday"\n')
        err = self.fails("log", config=True, code=2)
        self.assertIn("week_start", err)
        self.write_config('[tasklog\n')
        err = self.fails("log", config=True, code=2)
        self.assertIn("not valid TOML", err)

    def test_damaged_log_is_not_overwritten(self):
        with open(self.data, "w") as f:
            f.write("{oops")
        err = self.fails("start", "a")
        self.assertIn("will not overwrite", err)
        with open(self.data) as f:
            self.assertEqual(f.read(), "{oops")

    def test_bad_clock(self):
        code, _, err = self.run_cli("start", "a", now="whenever")
        self.assertEqual(code, 1)
        self.assertIn("TASKLOG_NOW", err)
