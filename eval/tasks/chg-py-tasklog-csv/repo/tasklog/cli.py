"""The command line: tasklog [--config FILE] [--data FILE] COMMAND [ARGS].

Each command is a function cmd_NAME(args, ctx) that returns the exit status;
ctx holds the settings, the log and the output streams. Errors that a user
can fix are raised as UserError and printed as one line, never a traceback.
"""
import argparse
import datetime as dt
import json
import os
import sys

from . import (__version__, budget, config, export, invoice, query, render, report, stats,
               timesheet, timeutil)
from .model import EntryError, check_project, check_tag
from .store import Store, StoreError


class UserError(Exception):
    """A mistake in the command or its input; printed as 'tasklog: <message>'."""


class Context:
    def __init__(self, cfg, store, out, err):
        self.cfg = cfg
        self.store = store
        self.out = out
        self.err = err

    def print(self, *parts):
        print(*parts, file=self.out)


# ---- argument types ------------------------------------------------------

def _type(fn, what):
    def parse(text):
        try:
            return fn(text)
        except (timeutil.TimeError, EntryError) as e:
            raise argparse.ArgumentTypeError(str(e))
    parse.__name__ = what
    return parse


time_arg = _type(lambda t: timeutil.parse_time(t), "time")
date_arg = _type(lambda t: timeutil.parse_date(t), "date")
project_arg = _type(check_project, "project")
tag_arg = _type(check_tag, "tag")


def period(args):
    """The date range of --from/--to/--week/--month as (since, until)."""
    today = timeutil.today()
    if getattr(args, "week", False):
        since = timeutil.week_start(today, args.cfg.week_start)
        return since, since + dt.timedelta(days=6)
    if getattr(args, "month", False):
        since = today.replace(day=1)
        nxt = (since + dt.timedelta(days=32)).replace(day=1)
        return since, nxt - dt.timedelta(days=1)
    return args.since, args.until


def make_filter(args, running=True):
    since, until = period(args)
    if since and until and since > until:
        raise UserError(f"--from {since} is after --to {until}")
    return query.Filter(since=since, until=until, project=getattr(args, "project", None),
                        tag=getattr(args, "tag", None), text=getattr(args, "grep", None),
                        running=running)


# ---- commands -------------------------------------------------------------

def cmd_start(args, ctx):
    now = timeutil.now()
    at = args.at or now
    if at > now:
        raise UserError("--at is in the future")
    project = args.project or ctx.cfg.default_project
    running = ctx.store.running()
    if running is not None:
        if at < running.start:
            raise UserError(f"--at is before the running entry {running.id} started")
        running.end = at
        ctx.print(f"stopped {running.id} {running.project} after "
                  f"{timeutil.format_duration(running.minutes())}")
    e = ctx.store.add(project, at, None, " ".join(args.task), args.tag)
    ctx.store.save()
    ctx.print(f"started {e.id} {e.project}" + (f": {e.task}" if e.task else "")
              + f" at {e.start:%H:%M}")
    return 0


def cmd_stop(args, ctx):
    running = ctx.store.running()
    if running is None:
        raise UserError("nothing is running")
    at = args.at or timeutil.now()
    if at < running.start:
        raise UserError(f"--at is before entry {running.id} started "
                        f"({timeutil.format_time(running.start)})")
    running.end = at
    ctx.store.save()
    ctx.print(f"stopped {running.id} {running.project} after "
              f"{timeutil.format_duration(running.minutes())}")
    return 0


def cmd_status(args, ctx):
    running = ctx.store.running()
    if running is None:
        ctx.print("nothing is running")
        return 0 if not args.exit_code else 1
    ctx.print(f"{running.id} {running.project}" + (f": {running.task}" if running.task else "")
              + f" since {running.start:%H:%M} ({timeutil.format_duration(running.minutes())})"
              + "".join(f" #{t}" for t in running.tags))
    return 0


def cmd_add(args, ctx):
    if args.end is None and args.duration is None:
        raise UserError("add needs --end or --for (a finished entry)")
    if args.end is not None and args.duration is not None:
        raise UserError("give --end or --for, not both")
    end = args.end if args.end is not None else args.start + dt.timedelta(minutes=args.duration)
    e = ctx.store.add(args.project, args.start, end, " ".join(args.task), args.tag)
    clashes = [b for a, b in query.overlapping(ctx.store.entries) if a is e] + \
              [a for a, b in query.overlapping(ctx.store.entries) if b is e]
    if clashes and not args.allow_overlap:
        raise UserError(f"the entry overlaps entry {clashes[0].id}; "
                        "use --allow-overlap to add it anyway")
    ctx.store.save()
    ctx.print(e.id)
    return 0


def _entry_row(e, now):
    end = f"{e.end:%H:%M}" if e.end else "..."
    if e.end and e.end.date() != e.start.date():
        end += f"+{(e.end.date() - e.start.date()).days}"
    return [e.id, f"{e.start:%Y-%m-%d}", f"{e.start:%H:%M}-{end}",
            timeutil.format_duration(e.minutes(now)), e.project, e.task,
            " ".join("#" + t for t in e.tags)]


def cmd_log(args, ctx):
    now = timeutil.now()
    entries = query.select(ctx.store.entries, make_filter(args))
    if args.json:
        ctx.print(json.dumps([dict(e.to_dict(), minutes=e.minutes(now)) for e in entries],
                             ensure_ascii=False, indent=1))
        return 0
    if not entries:
        ctx.print("no entries")
        return 0
    rows = [_entry_row(e, now) for e in entries]
    ctx.print(render.table(["id", "date", "time", "spent", "project", "task", "tags"], rows,
                           "rllrlll"))
    ctx.print(f"\n{len(entries)} entries, "
              f"{timeutil.format_duration(report.grand_total(entries, 0, now))}")
    return 0


def cmd_report(args, ctx):
    now = timeutil.now()
    by = args.by or ctx.cfg.report_by
    fmt = args.format or ctx.cfg.report_format
    rounding = ctx.cfg.rounding if args.rounding is None else args.rounding
    entries = query.select(ctx.store.entries, make_filter(args))
    rows = report.totals(entries, by, rounding, ctx.cfg.week_start, now)
    total = report.grand_total(entries, rounding, now)
    if fmt == "json":
        ctx.print(json.dumps({"by": by, "rounding": rounding,
                              "rows": [{"key": k, "minutes": m, "entries": n} for k, m, n in rows],
                              "total_minutes": total}, ensure_ascii=False, indent=1))
        return 0
    shown = [[k, timeutil.format_duration(m), n] for k, m, n in rows]
    shown.append(["total", timeutil.format_duration(total), len(entries)])
    if fmt == "markdown":
        ctx.print(render.markdown([by, "time", "entries"], shown, "lrr"))
    else:
        ctx.print(render.table([by, "time", "entries"], shown, "lrr"))
    if by == "tag" and any(len(e.tags) > 1 for e in entries):
        ctx.print("(an entry with several tags counts under each of them)")
    return 0


def cmd_edit(args, ctx):
    try:
        e = ctx.store.get(args.id)
    except KeyError:
        raise UserError(f"no entry {args.id}") from None
    changed = dict(project=e.project, start=e.start, end=e.end, task=e.task, tags=list(e.tags))
    if args.project:
        changed["project"] = args.project
    if args.start:
        changed["start"] = args.start
    if args.end:
        if e.running:
            raise UserError(f"entry {e.id} is running; stop it to set its end")
        changed["end"] = args.end
    if args.task is not None:
        changed["task"] = args.task
    if args.tag:
        changed["tags"] = sorted(set(changed["tags"]) | set(args.tag))
    if args.untag:
        changed["tags"] = [t for t in changed["tags"] if t not in args.untag]
    new = type(e)(id=e.id, **changed)
    ctx.store.entries[ctx.store.entries.index(e)] = new
    ctx.store.save()
    ctx.print(f"changed {new.id}")
    return 0


def cmd_delete(args, ctx):
    for i in args.ids:
        try:
            ctx.store.get(i)
        except KeyError:
            raise UserError(f"no entry {i}") from None
    for i in args.ids:
        ctx.store.remove(i)
    ctx.store.save()
    ctx.print("deleted " + " ".join(str(i) for i in args.ids))
    return 0


def cmd_projects(args, ctx):
    now = timeutil.now()
    rows = report.totals(ctx.store.entries, "project", 0, ctx.cfg.week_start, now)
    if not rows:
        ctx.print("no projects yet")
        return 0
    ctx.print(render.table(["project", "time", "entries"],
                           [[k, timeutil.format_duration(m), n] for k, m, n in rows], "lrr"))
    return 0


def cmd_export(args, ctx):
    entries = query.select(ctx.store.entries, make_filter(args, running=False))
    writer = export.FORMATS[args.format]
    if args.output in (None, "-"):
        writer(entries, ctx.out)
        return 0
    tmp = args.output + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer(entries, f)
        os.replace(tmp, args.output)
    except OSError as e:
        raise UserError(f"cannot write {args.output}: {e.strerror}") from None
    ctx.err.write(f"exported {len(entries)} entries to {args.output}\n")
    return 0


def cmd_timesheet(args, ctx):
    now = timeutil.now()
    rounding = ctx.cfg.rounding if args.rounding is None else args.rounding
    ts = timesheet.build(ctx.store.entries, args.week_of or timeutil.today(),
                         ctx.cfg.week_start, rounding, now)
    fmt = args.format or ctx.cfg.report_format
    if fmt == "json":
        ctx.print(json.dumps(timesheet.as_dict(ts), indent=1, ensure_ascii=False))
        return 0
    header, rows = timesheet.rows(ts)
    align = "l" + "r" * (len(header) - 1)
    if fmt == "markdown":
        ctx.print(render.markdown(header, rows, align))
    else:
        ctx.print(f"week of {timeutil.format_date(ts.days[0])}")
        ctx.print(render.table(header, rows, align))
    return 0


def cmd_budget(args, ctx):
    if not ctx.cfg.budgets:
        ctx.print("no budgets set; add a [budgets] table to the config, e.g. acme = \"40h\"")
        return 0
    now = timeutil.now()
    rows = []
    for u in budget.usage(ctx.store.entries, ctx.cfg.budgets, ctx.cfg.rounding, now):
        rows.append([u.project, timeutil.format_duration(u.budget), timeutil.format_duration(u.used),
                     timeutil.format_duration(u.remaining), f"{u.percent}%",
                     budget.bar(u) + (" over" if u.over else "")])
    ctx.print(render.table(["project", "budget", "used", "left", "", ""], rows, "lrrrrl"))
    return 0


def cmd_invoice(args, ctx):
    since, until = period(args)
    if since is None or until is None:
        raise UserError("an invoice needs a period: --from and --to, or --month or --week")
    entries = query.select(ctx.store.entries, make_filter(args, running=False))
    try:
        lines = invoice.lines(entries, ctx.cfg.rates, ctx.cfg.rounding)
    except invoice.InvoiceError as e:
        raise UserError(str(e)) from None
    if not lines:
        ctx.print("nothing to invoice in this period")
        return 0
    title = f"Time from {timeutil.format_date(since)} to {timeutil.format_date(until)}"
    if args.client:
        title += f" for {args.client}"
    rows = [[ln.project, invoice.hours(ln.minutes), invoice.money(ln.rate_cents),
             invoice.money(ln.amount_cents)] for ln in lines]
    total = sum(ln.amount_cents for ln in lines)
    rows.append(["total", invoice.hours(sum(ln.minutes for ln in lines)), "", invoice.money(total)])
    ctx.print(title)
    ctx.print()
    table = render.markdown if args.markdown else render.table
    ctx.print(table(["project", "hours", "rate", "amount"], rows, "lrrr"))
    return 0


def cmd_stats(args, ctx):
    since, until = period(args)
    today = timeutil.today()
    until = until or today
    since = since or until - dt.timedelta(days=29)
    st = stats.compute(ctx.store.entries, since, until, timeutil.now())
    ctx.print(f"{timeutil.format_date(since)} to {timeutil.format_date(until)}")
    for line in stats.describe(st):
        ctx.print(line)
    return 0


def cmd_check(args, ctx):
    pairs = query.overlapping(ctx.store.entries)
    for a, b in pairs:
        ctx.print(f"entries {a.id} ({a.project}) and {b.id} ({b.project}) overlap "
                  f"from {timeutil.format_time(b.start)}")
    if not pairs:
        ctx.print(f"{len(ctx.store.entries)} entries, no overlaps")
    return 1 if pairs else 0


def cmd_config(args, ctx):
    cfg = ctx.cfg
    days = {v: k for k, v in timeutil.WEEKDAYS.items()}
    ctx.print(f"config file:     {cfg.path or '(none, defaults)'}")
    ctx.print(f"data file:       {ctx.store.path}")
    ctx.print(f"week starts on:  {days[cfg.week_start]}")
    ctx.print(f"default project: {cfg.default_project}")
    ctx.print(f"rounding:        {cfg.rounding} min")
    ctx.print(f"report:          by {cfg.report_by}, as {cfg.report_format}")
    return 0


# ---- the parser -----------------------------------------------------------

def add_filters(p, dates=True):
    if dates:
        p.add_argument("--from", dest="since", type=date_arg, metavar="DATE",
                       help="entries from this day (YYYY-MM-DD, today, yesterday)")
        p.add_argument("--to", dest="until", type=date_arg, metavar="DATE",
                       help="entries up to this day, included")
        p.add_argument("--week", action="store_true", help="this week")
        p.add_argument("--month", action="store_true", help="this month")
    p.add_argument("--project", type=project_arg, help="this project and its sub-projects")
    p.add_argument("--tag", type=tag_arg, help="entries with this tag")


def parser():
    ap = argparse.ArgumentParser(prog="tasklog", description="Track the time you spend on tasks.")
    ap.add_argument("--version", action="version", version=f"tasklog {__version__}")
    ap.add_argument("--config", metavar="FILE", help="settings (default $TASKLOG_CONFIG or "
                    "~/.config/tasklog/config.toml)")
    ap.add_argument("--data", metavar="FILE", help="the log (default $TASKLOG_DATA or the "
                    "config's data_file)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("start", help="start a timer (stops the running one)")
    p.add_argument("project", nargs="?", type=project_arg)
    p.add_argument("task", nargs="*", help="what you work on")
    p.add_argument("--tag", type=tag_arg, action="append", default=[])
    p.add_argument("--at", type=time_arg, help="when it started (HH:MM, -15m, ...)")
    p.set_defaults(fn=cmd_start)

    p = sub.add_parser("stop", help="stop the running timer")
    p.add_argument("--at", type=time_arg, help="when it stopped")
    p.set_defaults(fn=cmd_stop)

    p = sub.add_parser("status", help="what is running")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when nothing runs")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("add", help="add a finished entry, print its id")
    p.add_argument("project", type=project_arg)
    p.add_argument("start", type=time_arg)
    p.add_argument("task", nargs="*")
    p.add_argument("--end", type=time_arg)
    p.add_argument("--for", dest="duration", type=_type(timeutil.parse_duration, "duration"),
                   metavar="DURATION", help="its length, like 1h30m")
    p.add_argument("--tag", type=tag_arg, action="append", default=[])
    p.add_argument("--allow-overlap", action="store_true")
    p.set_defaults(fn=cmd_add)

    p = sub.add_parser("log", help="list entries")
    add_filters(p)
    p.add_argument("--grep", metavar="TEXT", help="entries whose task holds TEXT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_log)

    p = sub.add_parser("report", help="totals by project, tag, day or week")
    add_filters(p)
    p.add_argument("--by", choices=config.REPORT_BY)
    p.add_argument("--format", choices=config.REPORT_FORMATS)
    p.add_argument("--rounding", type=int, metavar="MIN", help="round each entry (minutes)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("edit", help="change an entry")
    p.add_argument("id", type=int)
    p.add_argument("--project", type=project_arg)
    p.add_argument("--start", type=time_arg)
    p.add_argument("--end", type=time_arg)
    p.add_argument("--task")
    p.add_argument("--tag", type=tag_arg, action="append", default=[])
    p.add_argument("--untag", type=tag_arg, action="append", default=[])
    p.set_defaults(fn=cmd_edit)

    p = sub.add_parser("delete", help="delete entries")
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.set_defaults(fn=cmd_delete)

    p = sub.add_parser("projects", help="the projects and their time")
    p.set_defaults(fn=cmd_projects)

    p = sub.add_parser("export", help="write the finished entries for other programs")
    add_filters(p)
    p.add_argument("--format", choices=sorted(export.FORMATS), default="json")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("timesheet", help="a week as a grid of projects and days")
    p.add_argument("--week-of", type=date_arg, metavar="DATE", help="the week holding DATE "
                   "(default this week)")
    p.add_argument("--format", choices=config.REPORT_FORMATS)
    p.add_argument("--rounding", type=int, metavar="MIN")
    p.set_defaults(fn=cmd_timesheet)

    p = sub.add_parser("budget", help="time used against the budgets of the config")
    p.set_defaults(fn=cmd_budget)

    p = sub.add_parser("invoice", help="the time of a period priced by the [rates] of the config")
    add_filters(p)
    p.add_argument("--client", help="a name for the title")
    p.add_argument("--markdown", action="store_true", help="a Markdown table")
    p.set_defaults(fn=cmd_invoice)

    p = sub.add_parser("stats", help="days worked, streaks, busiest days (default: 30 days)")
    add_filters(p)
    p.set_defaults(fn=cmd_stats)

    p = sub.add_parser("check", help="look for overlapping entries")
    p.set_defaults(fn=cmd_check)

    p = sub.add_parser("config", help="show the settings in use")
    p.set_defaults(fn=cmd_config)
    return ap


def main(argv=None, out=None, err=None):
    """Runs one command; returns the exit status (0 ok, 1 failed, 2 usage or settings)."""
    out = out or sys.stdout
    err = err or sys.stderr
    ap = parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        cfg = config.load(args.config)
    except config.ConfigError as e:
        err.write(f"tasklog: {e}\n")
        return 2
    args.cfg = cfg
    data = args.data or os.environ.get("TASKLOG_DATA") or cfg.data_path()
    try:
        store = Store(data).load()
        return args.fn(args, Context(cfg, store, out, err))
    except (UserError, StoreError, EntryError, timeutil.TimeError) as e:
        err.write(f"tasklog: {e}\n")
        return 1


def main_entry():
    """The `tasklog` console script."""
    sys.exit(main())
