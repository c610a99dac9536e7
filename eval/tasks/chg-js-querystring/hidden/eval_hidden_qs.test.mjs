// Acceptance tests of chg-js-querystring.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { parse, stringify, withQuery } = require('./qs.js');
const plain = (o) => ({ ...o });

test('repeated keys give arrays in order', () => {
  assert.deepEqual(plain(parse('tag=a&tag=b&x=1')), { tag: ['a', 'b'], x: '1' });
  assert.deepEqual(parse('a=1&a=2&b=0&a=3').a, ['1', '2', '3']);
  assert.deepEqual(plain(parse('k&k=v')), { k: ['', 'v'] });
});

test('single keys stay strings', () => {
  const o = parse('?q=hello&page=2');
  assert.equal(o.q, 'hello');
  assert.equal(o.page, '2');
  assert.equal(Object.getPrototypeOf(o), null);
});

test('arrays round trip through stringify', () => {
  const o = { tag: ['a', 'b c', 'a'], q: 'x&y', n: '1' };
  assert.deepEqual(plain(parse(stringify(o))), o);
});

test('plus is a space', () => {
  assert.deepEqual(plain(parse('q=hello+world&b=1%2B1')), { q: 'hello world', b: '1+1' });
  assert.deepEqual(plain(parse('first+name=Ann+Lee')), { 'first name': 'Ann Lee' });
  assert.deepEqual(plain(parse('q=a+b&q=c+d')), { q: ['a b', 'c d'] });
});

test('malformed escapes are still kept', () => {
  assert.deepEqual(plain(parse('bad=%zz&bad=%41')), { bad: ['%zz', 'A'] });
});

test('withQuery keeps repeated keys', () => {
  assert.equal(withQuery('/p?tag=a&tag=b', { q: 'x' }), '/p?tag=a&tag=b&q=x');
  assert.equal(withQuery('/p?tag=a&tag=b', { tag: 'c' }), '/p?tag=c');
});
