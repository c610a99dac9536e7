"""Shared by the bench/*.sh reports: read JSON figures, print a side-by-side
table with ratios against the reference, write build/bench/<part>.json."""
import json
import os


def load(path):
    """Reads a JSON object from a file, skipping any lines printed before it
    (an npm install in a reference's run.sh writes to stdout first)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    start = 0 if text.startswith("{") else text.find("\n{") + 1
    try:
        return json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        return None


def dig(obj, *keys):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 100:
            s = f"{v:,.0f}"
        elif abs(v) >= 10:
            s = f"{v:.1f}"
        else:
            s = f"{v:.3f}"
    else:
        s = f"{v:,}" if isinstance(v, int) else str(v)
    return s + (" " + unit if unit else "")


def table(title, rows):
    """rows: (label, ours, ref, unit, better, target) with better 'lower' or
    'higher'; prints ours, the reference, how many times better we are, and
    whether the target holds."""
    print(title)
    head = f"  {'figure':<34} {'orchestrator':>16} {'reference':>16} {'ratio':>12}  target"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for label, ours, ref, unit, better, target in rows:
        ratio = ""
        if isinstance(ours, (int, float)) and isinstance(ref, (int, float)) and ours and ref:
            r = ref / ours if better == "lower" else ours / ref
            ratio = f"{r:.1f}x better" if r >= 1 else f"{1 / r:.1f}x worse"
        met = ""
        if target is not None and isinstance(ours, (int, float)):
            ok = ours <= target if better == "lower" else ours >= target
            met = f"{'<=' if better == 'lower' else '>='} {fmt(target)} {'met' if ok else 'MISSED'}"
        print(f"  {label:<34} {fmt(ours, unit):>16} {fmt(ref, unit):>16} {ratio:>12}  {met}")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
