// Acceptance tests of js-mdtable, through its command line only.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mdtable-'));

function run(args, input) {
  const p = spawnSync(process.execPath, [path.join(here, 'mdtable.js'), ...args], {
    input: input ?? '', encoding: 'utf8', timeout: 30000,
  });
  return { code: p.status, out: p.stdout, err: p.stderr };
}

function ok(args, input) {
  const r = run(args, input);
  assert.equal(r.code, 0, `exit ${r.code}: ${r.err}`);
  return r.out.split('\n').filter((l) => l.trim() !== '');
}

// the cells of a table row: split on '|' that is not escaped, trimmed
function cells(line) {
  const t = line.trim();
  assert.ok(t.startsWith('|') && t.endsWith('|'), `row starts and ends with |: ${line}`);
  const parts = [];
  let cur = '';
  for (let i = 1; i < t.length - 1; i++) {
    if (t[i] === '\\' && t[i + 1] === '|') { cur += '\\|'; i++; continue; }
    if (t[i] === '|') { parts.push(cur.trim()); cur = ''; continue; }
    cur += t[i];
  }
  parts.push(cur.trim());
  return parts;
}

const CSV = 'name,qty,price\napple,3,1.25\nwatermelon,1,4\n';

test('a table from stdin', () => {
  const lines = ok([], CSV);
  assert.equal(lines.length, 4);
  assert.deepEqual(cells(lines[0]), ['name', 'qty', 'price']);
  assert.deepEqual(cells(lines[2]), ['apple', '3', '1.25']);
  assert.deepEqual(cells(lines[3]), ['watermelon', '1', '4']);
  for (const c of cells(lines[1])) assert.match(c, /^:?-+:?$/);
});

test('the columns line up', () => {
  const lines = ok([], CSV);
  const width = lines[0].length;
  for (const l of lines) assert.equal(l.length, width, `all rows as wide as the header:\n${lines.join('\n')}`);
  // the separator's pipes sit where the header's do
  const pipes = (l) => [...l].map((ch, i) => (ch === '|' ? i : -1)).filter((i) => i >= 0);
  for (const l of lines) assert.deepEqual(pipes(l), pipes(lines[0]));
});

test('a narrow column is at least 3 wide', () => {
  const lines = ok([], 'a,b\n1,2\n');
  for (const c of cells(lines[1])) assert.ok(c.length >= 3, c);
});

test('a file argument', () => {
  const f = path.join(tmp, 'data.csv');
  fs.writeFileSync(f, CSV);
  const lines = ok([f]);
  assert.deepEqual(cells(lines[3]), ['watermelon', '1', '4']);
});

test('alignment markers', () => {
  const lines = ok(['--align', 'lrc'], CSV);
  const sep = cells(lines[1]);
  assert.match(sep[0], /^:-+$/);
  assert.match(sep[1], /^-+:$/);
  assert.match(sep[2], /^:-+:$/);
  const two = cells(ok(['--align', 'r'], CSV)[1]);
  assert.match(two[0], /^-+:$/);
  assert.match(two[1], /^:-+$/);
});

test('quoting, pipes and line breaks in cells', () => {
  const csv = 'k,v\r\n"a, b","say ""x"" | y"\r\n"two\nlines",z\r\n';
  const lines = ok([], csv);
  assert.equal(lines.length, 4);
  assert.deepEqual(cells(lines[2]), ['a, b', 'say "x" \\| y']);
  assert.deepEqual(cells(lines[3]), ['two<br>lines', 'z']);
});

test('delimiter option and short records', () => {
  const lines = ok(['--delimiter', ';'], 'a;b;c\n1;2\n"x;y";;z\n');
  assert.deepEqual(cells(lines[2]), ['1', '2', '']);
  assert.deepEqual(cells(lines[3]), ['x;y', '', 'z']);
});

test('errors exit 1 with a message and no table', () => {
  const cases = [
    [[path.join(tmp, 'missing.csv')], ''],
    [[], 'a,b\n"open,1\n'],
    [[], 'a,b\n1,2,3\n'],
    [['--align', 'lx'], CSV],
  ];
  for (const [args, input] of cases) {
    const r = run(args, input);
    assert.equal(r.code, 1, `${JSON.stringify(args)} ${JSON.stringify(input)}: exit ${r.code}`);
    assert.ok(r.err.trim().length > 0, 'a message on stderr');
    assert.ok(!r.out.includes('|'), `no table on stdout: ${r.out}`);
  }
});
