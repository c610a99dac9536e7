// Acceptance tests of js-lru.
import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const mod = await import(pathToFileURL(path.join(here, 'lru.js')).href);
const LRUCache = mod.LRUCache ?? mod.default?.LRUCache ?? mod.default;

test('capacity must be a positive integer', () => {
  for (const bad of [0, -1, 1.5, NaN, '3']) {
    assert.throws(() => new LRUCache(bad), RangeError, String(bad));
  }
  assert.equal(new LRUCache(1).size, 0);
});

test('evicts the least recently used entry', () => {
  const c = new LRUCache(2);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.get('a'), 1); // a is now the most recent
  c.set('c', 3); // evicts b
  assert.equal(c.has('b'), false);
  assert.equal(c.get('b'), undefined);
  assert.equal(c.get('a'), 1);
  assert.equal(c.get('c'), 3);
  assert.equal(c.size, 2);
});

test('set replaces and counts as a use', () => {
  const c = new LRUCache(2);
  c.set('a', 1);
  c.set('b', 2);
  c.set('a', 10);
  c.set('c', 3); // evicts b
  assert.deepEqual([...c.keys()], ['a', 'c']);
  assert.equal(c.get('a'), 10);
  assert.equal(c.size, 2);
});

test('has does not count as a use', () => {
  const c = new LRUCache(2);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.has('a'), true);
  c.set('c', 3); // a is still the least recent
  assert.equal(c.has('a'), false);
  assert.deepEqual([...c.keys()], ['b', 'c']);
});

test('delete, clear and keys order', () => {
  const c = new LRUCache(3);
  c.set(1, 'one');
  c.set(2, 'two');
  c.set(3, 'three');
  c.get(1);
  assert.deepEqual([...c.keys()], [2, 3, 1]);
  assert.equal(c.delete(3), true);
  assert.equal(c.delete(3), false);
  assert.deepEqual([...c.keys()], [2, 1]);
  c.clear();
  assert.equal(c.size, 0);
  assert.deepEqual([...c.keys()], []);
});

test('keys compare like Map keys; undefined values are kept', () => {
  const c = new LRUCache(3);
  const k = { id: 1 };
  c.set(k, 'obj');
  c.set('1', 'string');
  c.set(1, 'number');
  assert.equal(c.get(k), 'obj');
  assert.equal(c.get({ id: 1 }), undefined);
  assert.equal(c.get('1'), 'string');
  assert.equal(c.get(1), 'number');
  const d = new LRUCache(2);
  d.set('u', undefined);
  assert.equal(d.has('u'), true);
  assert.equal(d.has('v'), false);
});

test('a long run against a model', () => {
  const cap = 5;
  const c = new LRUCache(cap);
  const model = [];
  let seed = 42;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
  for (let i = 0; i < 3000; i++) {
    const key = rnd() % 12;
    if (rnd() % 2) {
      c.set(key, i);
      const j = model.findIndex((e) => e[0] === key);
      if (j >= 0) model.splice(j, 1);
      model.push([key, i]);
      if (model.length > cap) model.shift();
    } else {
      const j = model.findIndex((e) => e[0] === key);
      const want = j >= 0 ? model[j][1] : undefined;
      if (j >= 0) model.push(model.splice(j, 1)[0]);
      assert.equal(c.get(key), want);
    }
    assert.equal(c.size, model.length);
  }
  assert.deepEqual([...c.keys()], model.map((e) => e[0]));
});
