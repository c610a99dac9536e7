'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseDuration, formatDuration } = require('../duration.js');

test('round trip', () => {
  assert.equal(formatDuration(parseDuration('1h30m')), '1h30m');
});
