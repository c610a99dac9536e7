'use strict';
// Markdown tables: renderTable(header, records, align) -> lines of text.

class TableError extends Error {}

const MARK = { l: (w) => ':' + '-'.repeat(w - 1), c: (w) => ':' + '-'.repeat(w - 2) + ':', r: (w) => '-'.repeat(w - 1) + ':' };

function escapeCell(s) {
  return s.replace(/\|/g, '\\|').replace(/\r\n|\r|\n/g, '<br>');
}

function pad(s, w, a) {
  const room = w - s.length;
  if (a === 'r') return ' '.repeat(room) + s;
  if (a === 'c') {
    const left = Math.floor(room / 2);
    return ' '.repeat(left) + s + ' '.repeat(room - left);
  }
  return s + ' '.repeat(room);
}

function parseAlign(spec, ncols) {
  const out = [];
  for (const ch of spec ?? '') {
    const a = ch.toLowerCase();
    if (!MARK[a]) throw new TableError(`--align takes the letters l, c and r, not '${ch}'`);
    out.push(a);
  }
  if (out.length > ncols) throw new TableError(`--align names ${out.length} columns and the table has ${ncols}`);
  while (out.length < ncols) out.push('l');
  return out;
}

function renderTable(header, records, alignSpec) {
  const n = header.length;
  const align = parseAlign(alignSpec, n);
  const rows = [header, ...records].map((r, i) => {
    if (r.length > n) throw new TableError(`record ${i} has ${r.length} fields, the header has ${n}`);
    const cellsOut = r.map(escapeCell);
    while (cellsOut.length < n) cellsOut.push('');
    return cellsOut;
  });
  const widths = header.map((_, j) => Math.max(3, ...rows.map((r) => r[j].length)));
  const line = (r) => '| ' + r.map((c, j) => pad(c, widths[j], align[j])).join(' | ') + ' |';
  const sep = '| ' + widths.map((w, j) => MARK[align[j]](w)).join(' | ') + ' |';
  return [line(rows[0]), sep, ...rows.slice(1).map(line)];
}

module.exports = { renderTable, TableError };
