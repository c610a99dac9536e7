'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parse, stringify, withQuery } = require('../qs.js');

const plain = (o) => ({ ...o });

test('parse basics', () => {
  assert.deepEqual(plain(parse('a=1&b=two')), { a: '1', b: 'two' });
  assert.deepEqual(plain(parse('?q=hello%20world')), { q: 'hello world' });
  assert.deepEqual(plain(parse('')), {});
  assert.deepEqual(plain(parse('?')), {});
});

test('parse keys without values and empty pairs', () => {
  assert.deepEqual(plain(parse('flag&x=1&&y=')), { flag: '', x: '1', y: '' });
  assert.deepEqual(plain(parse('=orphan&k=v')), { k: 'v' });
});

test('parse decodes and keeps malformed escapes', () => {
  assert.deepEqual(plain(parse('name=J%C3%BCrgen&bad=%zz&pct=100%')), { name: 'Jürgen', bad: '%zz', pct: '100%' });
  assert.deepEqual(plain(parse('a%3Db=c%26d')), { 'a=b': 'c&d' });
});

test('parse has no prototype pollution', () => {
  const o = parse('__proto__=x&constructor=y');
  assert.equal(Object.getPrototypeOf(o), null);
  assert.equal(o.__proto__, 'x');
  assert.equal({}.polluted, undefined);
});

test('parse separator option', () => {
  assert.deepEqual(plain(parse('a=1;b=2', { separator: ';' })), { a: '1', b: '2' });
});

test('parse rejects non-strings', () => {
  assert.throws(() => parse(null), TypeError);
});

test('stringify basics', () => {
  assert.equal(stringify({ q: 'a b', page: 2 }), 'q=a%20b&page=2');
  assert.equal(stringify({ a: undefined, b: null, c: true }), 'b=&c=true');
  assert.equal(stringify({ tag: ['x', 'y'] }), 'tag=x&tag=y');
  assert.equal(stringify({ b: 1, a: 2 }, { sort: true }), 'a=2&b=1');
  assert.equal(stringify({ "it's": '(ok)!' }), 'it%27s=%28ok%29%21');
  assert.equal(stringify({}), '');
  assert.throws(() => stringify('x'), TypeError);
});

test('round trip of single values', () => {
  const o = { q: 'a&b=c', name: 'Jürgen', empty: '' };
  assert.deepEqual(plain(parse(stringify(o))), o);
});

test('withQuery', () => {
  assert.equal(withQuery('/search', { q: 'x' }), '/search?q=x');
  assert.equal(withQuery('/search?q=old&page=2#top', { q: 'new' }), '/search?q=new&page=2#top');
  assert.equal(withQuery('/p?a=1', { a: undefined }), '/p');
});

test('repeated keys and plus signs', () => {
  assert.deepEqual(plain(parse('tag=a&tag=b&one=1')), { tag: ['a', 'b'], one: '1' });
  assert.deepEqual(plain(parse('q=a+b%2Bc')), { q: 'a b+c' });
  const o = { tag: ['x', 'y z'] };
  assert.deepEqual(plain(parse(stringify(o))), o);
});
