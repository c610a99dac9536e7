'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { LRUCache } = require('../lru.js');

test('evicts the oldest', () => {
  const c = new LRUCache(1);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.has('a'), false);
});
