// Acceptance tests of chg-js-envfile-expand.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { parse, load, EnvSyntaxError } = require('./envfile.js');
const plain = (o) => ({ ...o });
const p = (text, env = {}) => plain(parse(text, { env }));

test('references to lines above', () => {
  assert.deepEqual(p('A=1\nB=${A}2\nC="x $A y"\nD=$A.$A'), { A: '1', B: '12', C: 'x 1 y', D: '1.1' });
});

test('single quotes are never expanded', () => {
  assert.deepEqual(p("A=1\nS='$A ${A}'"), { A: '1', S: '$A ${A}' });
});

test('the environment, then empty', () => {
  assert.deepEqual(p('P=${ROOT}/bin\nM=a${NOPE}b\nN=a$NOPE-b', { ROOT: '/opt' }),
    { P: '/opt/bin', M: 'ab', N: 'a-b' });
});

test('the file wins over the environment; later lines are not seen', () => {
  assert.deepEqual(p('A=file\nB=$A', { A: 'env' }), { A: 'file', B: 'file' });
  assert.deepEqual(p('X=[$Y]\nY=1'), { X: '[]', Y: '1' });
});

test('defaults', () => {
  assert.deepEqual(p('A=${NOPE:-fallback}\nE=\nF="${E:-empty was set} ok"\nG=${A:-unused}'),
    { A: 'fallback', E: '', F: 'empty was set ok', G: 'fallback' });
  assert.deepEqual(p('H=${NOPE:-$B}'), { H: '$B' });
});

test('escaped and literal dollars', () => {
  assert.deepEqual(p('A=1\nG="\\$A costs \\${A}"\nH=\\$A'), { A: '1', G: '$A costs ${A}', H: '$A' });
  assert.deepEqual(p('COST=$5\nEND=cash$\nQ="100$ or $ 5"'), { COST: '$5', END: 'cash$', Q: '100$ or $ 5' });
});

test('an unclosed ${ is a syntax error on its line', () => {
  assert.throws(() => parse('A=1\nB=${A', { env: {} }), (e) => e instanceof EnvSyntaxError && e.line === 2);
  assert.throws(() => parse('A="x ${A"', { env: {} }), EnvSyntaxError);
});

test('parse falls back on process.env by default', () => {
  process.env.EVAL_HIDDEN_ENVFILE = 'from-process';
  try {
    assert.equal(parse('V=$EVAL_HIDDEN_ENVFILE').V, 'from-process');
  } finally {
    delete process.env.EVAL_HIDDEN_ENVFILE;
  }
});

test('load expands with its env', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'envfile-hidden-'));
  const f = path.join(dir, '.env');
  fs.writeFileSync(f, 'URL=http://${HOST}:${PORT:-80}/\nHOST=ignored\n');
  const env = { HOST: 'db.local' };
  load(f, { env });
  assert.equal(env.URL, 'http://db.local:80/');
  assert.equal(env.HOST, 'db.local');
});
