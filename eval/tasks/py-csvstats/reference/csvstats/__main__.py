"""python3 -m csvstats FILE [--column NAME]... [--json]"""
import argparse
import json
import sys

from .stats import summarize


def fmt(v):
    return "-" if v is None else f"{v:.6g}"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="csvstats",
                                 description="Summarises the numeric columns of a CSV file.")
    ap.add_argument("file")
    ap.add_argument("--column", action="append", help="only this column (repeatable)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        s = summarize(args.file, args.column)
    except OSError as e:
        print(f"csvstats: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"csvstats: no column {e.args[0]!r} in {args.file}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"csvstats: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    cols = ("count", "missing", "min", "max", "mean", "median")
    width = max([len(c) for c in s] + [6])
    print(f"{'column':<{width}}  " + "  ".join(f"{c:>10}" for c in cols))
    for name, st in s.items():
        print(f"{name:<{width}}  " + "  ".join(f"{fmt(st[c]) if c not in ('count', 'missing') else st[c]:>10}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
