'use strict';
// RFC 4180 CSV parsing: parseCSV(text, delimiter) -> array of records.

class CSVError extends Error {}

function parseCSV(text, delimiter = ',') {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  let atStart = true;
  let line = 1;
  let quoteLine = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"' && atStart) {
      quoted = true;
      quoteLine = line;
      atStart = false;
    } else if (c === delimiter) {
      row.push(field);
      field = '';
      atStart = true;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      if (c === '\r') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      atStart = true;
      line++;
    } else {
      field += c;
      atStart = false;
    }
  }
  if (quoted) throw new CSVError(`the quoted field opened on line ${quoteLine} is never closed`);
  if (!atStart || field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

module.exports = { parseCSV, CSVError };
