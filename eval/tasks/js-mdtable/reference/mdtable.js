#!/usr/bin/env node
'use strict';
// node mdtable.js [--align SPEC] [--delimiter C] [FILE]: CSV to a Markdown table.

const fs = require('node:fs');
const { parseCSV, CSVError } = require('./lib/csv.js');
const { renderTable, TableError } = require('./lib/table.js');

const USAGE = 'usage: node mdtable.js [--align SPEC] [--delimiter C] [FILE]';

function parseArgs(argv) {
  const opts = { align: '', delimiter: ',', file: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--align' || a === '--delimiter') {
      if (i + 1 >= argv.length) throw new TableError(`${a} needs a value\n${USAGE}`);
      opts[a.slice(2)] = argv[++i];
    } else if (a === '-h' || a === '--help') {
      opts.help = true;
    } else if (a.startsWith('-') && a !== '-') {
      throw new TableError(`unknown option ${a}\n${USAGE}`);
    } else if (opts.file === null) {
      opts.file = a;
    } else {
      throw new TableError(`one file at most\n${USAGE}`);
    }
  }
  if ([...opts.delimiter].length !== 1) throw new TableError('--delimiter takes one character');
  return opts;
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
    if (opts.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    let text;
    try {
      text = fs.readFileSync(opts.file === null || opts.file === '-' ? 0 : opts.file, 'utf8');
    } catch (e) {
      throw new TableError(`cannot read ${opts.file ?? 'standard input'}: ${e.message}`);
    }
    const rows = parseCSV(text, opts.delimiter);
    if (rows.length === 0) throw new TableError('no header: the input is empty');
    const lines = renderTable(rows[0], rows.slice(1), opts.align);
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } catch (e) {
    if (e instanceof CSVError || e instanceof TableError) {
      process.stderr.write(`mdtable: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = main();
