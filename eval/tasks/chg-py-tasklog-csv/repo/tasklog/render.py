"""Text output: aligned tables and Markdown tables."""


def _cell(v):
    return "" if v is None else str(v)


def table(headers, rows, align=None):
    """HEADERS and ROWS as an aligned plain-text table. ALIGN is a string of
    'l' and 'r', one per column (default all left)."""
    align = align or "l" * len(headers)
    cells = [[_cell(v) for v in r] for r in [headers] + list(rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(headers, rows, align=None):
    """HEADERS and ROWS as a Markdown table ('|' in cells escaped)."""
    align = align or "l" * len(headers)

    def esc(v):
        return _cell(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(esc(v) for v in r) + " |")
    return "\n".join(lines)
