"""summarize(): per numeric column count, missing, min, max, mean, median."""
import csv
import statistics


def _number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def _column_stats(values, missing):
    if not values:
        return {"count": 0, "missing": missing, "min": None, "max": None,
                "mean": None, "median": None}
    return {"count": len(values), "missing": missing, "min": min(values), "max": max(values),
            "mean": statistics.fmean(values), "median": float(statistics.median(values))}


def summarize(path, columns=None):
    """The statistics of the numeric columns of the CSV file at PATH (all of
    them, or the names in COLUMNS: KeyError for an unknown one, ValueError for
    one that is not numeric). Raises OSError when the file cannot be read."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        header = []
    else:
        header = [h.strip() for h in rows[0]]
    cells = {h: [] for h in header}
    for row in rows[1:]:
        for i, h in enumerate(header):
            cells[h].append(row[i].strip() if i < len(row) else "")
    numeric = {}
    for h in header:
        vals = [c for c in cells[h] if c]
        nums = [_number(c) for c in vals]
        if all(n is not None for n in nums):
            numeric[h] = _column_stats(nums, len(cells[h]) - len(vals))
    if columns is None:
        return numeric
    out = {}
    for c in columns:
        if c not in cells:
            raise KeyError(c)
        if c not in numeric:
            raise ValueError(f"column {c!r} is not numeric")
        out[c] = numeric[c]
    return out
