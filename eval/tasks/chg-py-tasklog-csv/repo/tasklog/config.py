"""Settings from a TOML file.

    [tasklog]
    data_file = "~/work/hours.json"   # where the log is kept
    week_start = "monday"             # the first day of a week in reports
    default_project = "misc"          # the project of `start` without one
    rounding = 5                      # round each entry to this many minutes in reports

    [report]
    format = "table"                  # table, markdown or json
    by = "project"                    # project, tag, day or week

    [budgets]                         # time budgets per project (tasklog budget)
    acme = "40h"

    [rates]                           # hourly rates per project (tasklog invoice)
    acme = 95

The file is --config FILE, else $TASKLOG_CONFIG, else
~/.config/tasklog/config.toml; when that default file does not exist the
defaults apply. The log file is --data FILE, else $TASKLOG_DATA, else the
setting, else ~/.local/share/tasklog/log.json.
"""
import dataclasses
import os
import tomllib

from . import timeutil
from .model import EntryError, check_project

REPORT_FORMATS = ("table", "markdown", "json")
REPORT_BY = ("project", "tag", "day", "week")


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file and the setting."""


@dataclasses.dataclass
class Config:
    data_file: str = "~/.local/share/tasklog/log.json"
    week_start: int = 0
    default_project: str = "misc"
    rounding: int = 0
    report_format: str = "table"
    report_by: str = "project"
    budgets: dict = dataclasses.field(default_factory=dict)  # project -> minutes
    rates: dict = dataclasses.field(default_factory=dict)    # project -> cents per hour
    path: str = None  # the file the settings came from, if any

    def data_path(self):
        return os.path.expanduser(self.data_file)


def default_path():
    return os.environ.get("TASKLOG_CONFIG") or os.path.expanduser("~/.config/tasklog/config.toml")


def load(path=None):
    """The settings of PATH (None: the default file, which may be missing).
    Raises ConfigError for a file that cannot be read or a wrong setting."""
    explicit = path is not None or bool(os.environ.get("TASKLOG_CONFIG"))
    path = path or default_path()
    cfg = Config()
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist") from None
        return cfg
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    cfg.path = path

    section = raw.get("tasklog")
    for key, value in section.items():
        _set(cfg, path, key, value)
    report = raw.get("report", {})
    if not isinstance(report, dict):
        raise ConfigError(f"{path}: [report] must be a table")
    for key, value in report.items():
        _set_report(cfg, path, key, value)
    budgets = raw.get("budgets", {})
    if not isinstance(budgets, dict):
        raise ConfigError(f"{path}: [budgets] must be a table")
    for project, value in budgets.items():
        _set_budget(cfg, path, project, value)
    rates = raw.get("rates", {})
    if not isinstance(rates, dict):
        raise ConfigError(f"{path}: [rates] must be a table")
    for project, value in rates.items():
        _set_rate(cfg, path, project, value)
    known = ("tasklog", "report", "budgets", "rates")
    for key in raw:
        if key not in known:
            raise ConfigError(f"{path}: unknown table [{key}] (known: "
                              + ", ".join(f"[{k}]" for k in known) + ")")
    return cfg


def _need(path, key, value, typ, what):
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ConfigError(f"{path}: {key} must be {what}, not {value!r}")
    return value


def _set(cfg, path, key, value):
    if key == "data_file":
        cfg.data_file = _need(path, key, value, str, "a path")
    elif key == "week_start":
        day = _need(path, key, value, str, "a weekday name").lower()
        if day not in timeutil.WEEKDAYS:
            raise ConfigError(f"{path}: week_start must be a weekday name, not {value!r}")
        cfg.week_start = timeutil.WEEKDAYS[day]
    elif key == "default_project":
        try:
            cfg.default_project = check_project(_need(path, key, value, str, "a project name"))
        except EntryError as e:
            raise ConfigError(f"{path}: default_project: {e}") from None
    elif key == "rounding":
        n = _need(path, key, value, int, "a number of minutes")
        if not 0 <= n <= 60:
            raise ConfigError(f"{path}: rounding must be from 0 to 60 minutes, not {n}")
        cfg.rounding = n
    else:
        raise ConfigError(f"{path}: unknown setting {key!r} in [tasklog]")


def _set_report(cfg, path, key, value):
    if key == "format":
        v = _need(path, "report.format", value, str, "text")
        if v not in REPORT_FORMATS:
            raise ConfigError(f"{path}: report.format must be one of {', '.join(REPORT_FORMATS)}")
        cfg.report_format = v
    elif key == "by":
        v = _need(path, "report.by", value, str, "text")
        if v not in REPORT_BY:
            raise ConfigError(f"{path}: report.by must be one of {', '.join(REPORT_BY)}")
        cfg.report_by = v
    else:
        raise ConfigError(f"{path}: unknown setting {key!r} in [report]")


def _set_budget(cfg, path, project, value):
    try:
        check_project(project)
    except EntryError as e:
        raise ConfigError(f"{path}: [budgets]: {e}") from None
    try:
        minutes = timeutil.parse_duration(_need(path, f"budgets.{project}", value, str,
                                                "a duration like \"40h\""))
    except timeutil.TimeError as e:
        raise ConfigError(f"{path}: budgets.{project}: {e}") from None
    if minutes <= 0:
        raise ConfigError(f"{path}: budgets.{project} must be more than 0")
    cfg.budgets[project] = minutes


def _set_rate(cfg, path, project, value):
    from .invoice import cents

    try:
        check_project(project)
    except EntryError as e:
        raise ConfigError(f"{path}: [rates]: {e}") from None
    rate = _need(path, f"rates.{project}", value, (int, float), "a number (per hour)")
    if rate < 0:
        raise ConfigError(f"{path}: rates.{project} cannot be negative")
    cfg.rates[project] = cents(rate)
