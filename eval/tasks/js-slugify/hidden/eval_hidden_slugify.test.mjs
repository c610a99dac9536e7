// Acceptance tests of js-slugify.
import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const mod = await import(pathToFileURL(path.join(here, 'slugify.js')).href);
const slugify = mod.slugify ?? mod.default?.slugify ?? mod.default;

test('punctuation and spaces become one dash', () => {
  assert.equal(slugify('Hello, World!'), 'hello-world');
  assert.equal(slugify('  many   spaces  '), 'many-spaces');
  assert.equal(slugify('a--b__c..d'), 'a-b-c-d');
  assert.equal(slugify('Top 10 Tips'), 'top-10-tips');
});

test('accents are dropped', () => {
  assert.equal(slugify(' Crème Brûlée '), 'creme-brulee');
  assert.equal(slugify('Ångström über São Paulo'), 'angstrom-uber-sao-paulo');
});

test('characters without an a-z form disappear', () => {
  assert.equal(slugify(''), '');
  assert.equal(slugify('日本語'), '');
  assert.equal(slugify('I ♥ JS 🎉 now'), 'i-js-now');
});

test('separator option', () => {
  assert.equal(slugify('Hello, World!', { separator: '_' }), 'hello_world');
  assert.equal(slugify('a - b', { separator: '_' }), 'a_b');
});

test('maxLength cuts and drops a trailing separator', () => {
  assert.equal(slugify('hello big world', { maxLength: 9 }), 'hello-big');
  assert.equal(slugify('hello big world', { maxLength: 6 }), 'hello');
  assert.equal(slugify('hello big world', { maxLength: 100 }), 'hello-big-world');
  assert.equal(slugify('abcdef', { maxLength: 3 }), 'abc');
});

test('non-strings are a TypeError', () => {
  assert.throws(() => slugify(42), TypeError);
  assert.throws(() => slugify(null), TypeError);
  assert.throws(() => slugify(undefined), TypeError);
});
