"""The command line: python3 -m todo [--db PATH] COMMAND [ARGS]."""
import argparse
import datetime
import json
import sys

from .store import StoreError, TodoList, default_path, parse_date


def date_arg(text):
    try:
        parse_date(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    return text


def parser():
    ap = argparse.ArgumentParser(prog="todo", description="A to-do list for the terminal.")
    ap.add_argument("--db", help="the list file (default: $TODO_DB or ~/.todo.json)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("add", help="add an item, print its id")
    p.add_argument("text")
    p.add_argument("--due", type=date_arg)
    p.add_argument("--tag", action="append", default=[])
    p = sub.add_parser("list", help="show the open items")
    p.add_argument("--all", action="store_true", help="done items too")
    p.add_argument("--tag")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("done", help="mark an item done")
    p.add_argument("id", type=int)
    p = sub.add_parser("rm", help="remove an item")
    p.add_argument("id", type=int)
    p = sub.add_parser("overdue", help="open items due before today")
    p.add_argument("--today", type=date_arg)
    p.add_argument("--json", action="store_true")
    return ap


def show(items, as_json):
    if as_json:
        print(json.dumps(items, ensure_ascii=False))
        return
    for it in items:
        mark = "x" if it["done"] else " "
        due = f"  (due {it['due']})" if it["due"] else ""
        tags = "".join(f"  #{t}" for t in it["tags"])
        print(f"{it['id']:>3} [{mark}] {it['text']}{due}{tags}")


def main(argv=None):
    args = parser().parse_args(argv)
    todo = TodoList(args.db or default_path())
    try:
        todo.load()
        if args.command == "add":
            item = todo.add(args.text, args.due, args.tag)
            todo.save()
            print(item["id"])
        elif args.command == "list":
            show(todo.select(all_items=args.all, tag=args.tag), args.json)
        elif args.command == "overdue":
            today = args.today or datetime.date.today().isoformat()
            show(todo.select(overdue_on=today), args.json)
        elif args.command == "done":
            todo.get(args.id)["done"] = True
            todo.save()
        elif args.command == "rm":
            todo.remove(args.id)
            todo.save()
    except KeyError as e:
        print(f"todo: no item with id {e.args[0]}", file=sys.stderr)
        return 1
    except StoreError as e:
        print(f"todo: {e}", file=sys.stderr)
        return 1
    return 0
