// Acceptance tests of js-duration.
import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const mod = await import(pathToFileURL(path.join(here, 'duration.js')).href);
const parseDuration = mod.parseDuration ?? mod.default?.parseDuration;
const formatDuration = mod.formatDuration ?? mod.default?.formatDuration;

const S = 1000, M = 60 * S, H = 60 * M, D = 24 * H;

test('parse single and combined units', () => {
  assert.equal(parseDuration('90s'), 90 * S);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1h30m'), H + 30 * M);
  assert.equal(parseDuration('2d4h5s'), 2 * D + 4 * H + 5 * S);
  assert.equal(parseDuration('1d1h1m1s1ms'), D + H + M + S + 1);
  assert.equal(parseDuration('90m'), 90 * M);
  assert.equal(parseDuration('0s'), 0);
});

test('parse decimals', () => {
  assert.equal(parseDuration('1.5h'), 1.5 * H);
  assert.equal(parseDuration('0.5s'), 500);
  assert.equal(parseDuration('2.25m'), 135 * S);
});

test('parse rejects what is not a duration', () => {
  for (const bad of ['', '5', 'h', '5x', '1h 30m', ' 1h', '-1h', '+1h', '30m1h', '1h1h', '1s1m', 'ms', '1.h2']) {
    assert.throws(() => parseDuration(bad), Error, JSON.stringify(bad));
  }
});

test('format from the largest unit, zero units left out', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(1), '1ms');
  assert.equal(formatDuration(1500), '1s500ms');
  assert.equal(formatDuration(90 * M), '1h30m');
  assert.equal(formatDuration(D + H + M + S + 1), '1d1h1m1s1ms');
  assert.equal(formatDuration(3 * D + 5 * S), '3d5s');
  assert.equal(formatDuration(60 * S), '1m');
});

test('format rejects negative and fractional input', () => {
  for (const bad of [-1, 1.5, NaN, Infinity]) {
    assert.throws(() => formatDuration(bad), RangeError, String(bad));
  }
});

test('format then parse is the identity', () => {
  for (const ms of [0, 1, 999, 1000, 59999, 3600000, 86399999, 123456789, 987654321012]) {
    assert.equal(parseDuration(formatDuration(ms)), ms);
  }
});
