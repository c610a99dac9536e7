'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseCSV, stringifyCSV } = require('../csv.js');

test('round trip of a quoted field', () => {
  const rows = [['a,b', 'c"d']];
  assert.deepEqual(parseCSV(stringifyCSV(rows)), rows);
});
