// Acceptance tests of js-csv.
import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const mod = await import(pathToFileURL(path.join(here, 'csv.js')).href);
const parseCSV = mod.parseCSV ?? mod.default?.parseCSV;
const stringifyCSV = mod.stringifyCSV ?? mod.default?.stringifyCSV;

test('plain records', () => {
  assert.deepEqual(parseCSV('a,b,c\n1,2,3\n'), [['a', 'b', 'c'], ['1', '2', '3']]);
  assert.deepEqual(parseCSV('a,b\r\n1,2'), [['a', 'b'], ['1', '2']]);
  assert.deepEqual(parseCSV(''), []);
  assert.deepEqual(parseCSV('x'), [['x']]);
});

test('empty fields, spaces and ragged records are kept', () => {
  assert.deepEqual(parseCSV(',a,\n b , c\n\nlast'), [['', 'a', ''], [' b ', ' c'], [''], ['last']]);
});

test('quoted fields', () => {
  const text = '"name","note"\n"Smith, J.","said ""hi""\nthen left"\n"",x\n';
  assert.deepEqual(parseCSV(text), [
    ['name', 'note'],
    ['Smith, J.', 'said "hi"\nthen left'],
    ['', 'x'],
  ]);
  assert.deepEqual(parseCSV('"a\r\nb",c\r\n'), [['a\r\nb', 'c']]);
});

test('a quote inside an unquoted field is ordinary', () => {
  assert.deepEqual(parseCSV('5" screen,ok\n'), [['5" screen', 'ok']]);
});

test('an unclosed quote throws', () => {
  assert.throws(() => parseCSV('a,"open\nstill open'), Error);
});

test('delimiter option', () => {
  assert.deepEqual(parseCSV('a;b,c;"d;e"\n', { delimiter: ';' }), [['a', 'b,c', 'd;e']]);
  assert.deepEqual(parseCSV('a\tb\n', { delimiter: '\t' }), [['a', 'b']]);
  assert.equal(stringifyCSV([['a', 'b;c', 'd,e']], { delimiter: ';' }), 'a;"b;c";d,e\n');
});

test('stringify quotes only what needs it', () => {
  assert.equal(stringifyCSV([['a', 'b,c', 'd"e'], ['x\ny', '', 'z']]), 'a,"b,c","d""e"\n"x\ny",,z\n');
  assert.equal(stringifyCSV([[1, true, null, undefined, 'ok']]), '1,true,,,ok\n');
  assert.equal(stringifyCSV([]), '');
});

test('round trip', () => {
  const alphabet = ['a', 'b', ',', '"', '\n', '\r\n', ' ', 'é', ';', ''];
  let seed = 7;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  for (let i = 0; i < 300; i++) {
    const rows = [];
    const nrows = 1 + rnd(4);
    for (let r = 0; r < nrows; r++) {
      const row = [];
      const nf = 1 + rnd(4);
      for (let f = 0; f < nf; f++) {
        let s = '';
        const len = rnd(6);
        for (let k = 0; k < len; k++) s += alphabet[rnd(alphabet.length)];
        row.push(s);
      }
      // a record of one empty field is written as an empty line, which parses back the same
      rows.push(row);
    }
    assert.deepEqual(parseCSV(stringifyCSV(rows)), rows, JSON.stringify(rows));
  }
});
