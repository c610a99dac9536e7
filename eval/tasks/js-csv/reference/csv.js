'use strict';
// RFC 4180 CSV: parseCSV(text, { delimiter }) and stringifyCSV(rows, { delimiter }).

function parseCSV(text, options = {}) {
  const delim = options.delimiter ?? ',';
  const rows = [];
  let row = [];
  let field = '';
  let i = 0;
  let quoted = false; // inside a quoted field
  let atStart = true; // at the start of a field
  let line = 1;
  let quoteLine = 0;
  if (text === '') return rows;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      if (c === '\n') line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"' && atStart) {
      quoted = true;
      quoteLine = line;
      atStart = false;
      i++;
    } else if (c === delim) {
      row.push(field);
      field = '';
      atStart = true;
      i++;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      atStart = true;
      line++;
      i += c === '\r' ? 2 : 1;
    } else {
      field += c;
      atStart = false;
      i++;
    }
  }
  if (quoted) throw new Error(`parseCSV: the quoted field opened on line ${quoteLine} is never closed`);
  if (!atStart || field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function stringifyCSV(rows, options = {}) {
  const delim = options.delimiter ?? ',';
  let out = '';
  for (const row of rows) {
    out += row.map((v) => cell(v, delim)).join(delim) + '\n';
  }
  return out;
}

function cell(v, delim) {
  const s = v === null || v === undefined ? '' : String(v);
  if (s.includes(delim) || s.includes('"') || s.includes('\n') || s.includes('\r')) {
    return '"' + s.replace(/"/g, '""') + '"';
  }
  return s;
}

module.exports = { parseCSV, stringifyCSV };
