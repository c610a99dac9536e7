'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parse, load, EnvSyntaxError } = require('../envfile.js');

const plain = (o) => ({ ...o });

test('plain values, comments, export', () => {
  const text = '# top\nA=1\n  B = two words  \nexport C=3\nD=x # trailing\nE=a#b\n\n';
  assert.deepEqual(plain(parse(text)), { A: '1', B: 'two words', C: '3', D: 'x', E: 'a#b' });
});

test('double quotes take escapes, single quotes are literal', () => {
  const text = 'G="hello\\nworld"\nQ="say \\"hi\\""\nR=\'C:\\path\\n\'\nH="a # b"\n';
  assert.deepEqual(plain(parse(text)), { G: 'hello\nworld', Q: 'say "hi"', R: 'C:\\path\\n', H: 'a # b' });
});

test('dollar signs are kept as they are', () => {
  const text = 'PRICE="$5 fee"\nLIT=\'$HOME and ${HOME}\'\nCOST=$5\nEND=cash$\n';
  assert.deepEqual(plain(parse(text)), { PRICE: '$5 fee', LIT: '$HOME and ${HOME}', COST: '$5', END: 'cash$' });
});

test('last value wins, CRLF, empty values', () => {
  assert.deepEqual(plain(parse('A=1\r\nA=2\r\nB=\r\nC=""\r\n')), { A: '2', B: '', C: '' });
});

test('syntax errors name the line', () => {
  for (const [text, line] of [['A=1\nnot a pair\n', 2], ['A="open\n', 1], ['1A=x\n', 1], ["A='x' y\n", 1]]) {
    assert.throws(() => parse(text), (e) => e instanceof EnvSyntaxError && e.line === line, text);
  }
});

test('load fills an env without overriding', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'envfile-'));
  const f = path.join(dir, '.env');
  fs.writeFileSync(f, 'A=from-file\nB=from-file\n');
  const env = { A: 'already' };
  load(f, { env });
  assert.deepEqual(env, { A: 'already', B: 'from-file' });
  load(f, { env, override: true });
  assert.equal(env.A, 'from-file');
  assert.deepEqual(plain(load(path.join(dir, 'none'), { env, optional: true })), {});
  assert.throws(() => load(path.join(dir, 'none'), { env }), /ENOENT/);
});

test('expansion', () => {
  const env = { HOST: 'h' };
  assert.deepEqual(plain(parse('A=1\nB=${A}2\nC="$HOST:${PORT:-80}"\nD=\'$A\'\nE=\\$A', { env })),
    { A: '1', B: '12', C: 'h:80', D: '$A', E: '$A' });
  assert.throws(() => parse('X=${A', { env }), EnvSyntaxError);
});
