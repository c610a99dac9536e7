'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseCSV } = require('../lib/csv.js');
const { renderTable } = require('../lib/table.js');

test('csv and table', () => {
  const rows = parseCSV('a,b\n"x|y",2\n');
  assert.deepEqual(renderTable(rows[0], rows.slice(1), 'lr'), [
    '| a    |   b |',
    '| :--- | --: |',
    '| x\\|y |   2 |',
  ]);
});
