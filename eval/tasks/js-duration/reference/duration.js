'use strict';
// Durations written as number+unit groups, d h m s ms, largest unit first.

const UNITS = [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000], ['ms', 1]];
const GROUP = /^(\d+(?:\.\d+)?)(ms|d|h|m|s)/;

function parseDuration(text) {
  if (typeof text !== 'string' || text === '') {
    throw new Error(`not a duration: ${JSON.stringify(text)}`);
  }
  let rest = text;
  let total = 0;
  let last = -1; // index in UNITS of the previous group's unit
  while (rest !== '') {
    const m = GROUP.exec(rest);
    if (!m) throw new Error(`not a duration: ${JSON.stringify(text)} (expected a number and one of d, h, m, s, ms)`);
    const idx = UNITS.findIndex((u) => u[0] === m[2]);
    if (idx <= last) throw new Error(`not a duration: ${JSON.stringify(text)} (units must go from the largest to the smallest, each once)`);
    last = idx;
    total += Number(m[1]) * UNITS[idx][1];
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

function formatDuration(ms) {
  if (!Number.isInteger(ms) || ms < 0) {
    throw new RangeError(`formatDuration: expected a non-negative integer of milliseconds, not ${ms}`);
  }
  if (ms === 0) return '0s';
  let out = '';
  let rest = ms;
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

module.exports = { parseDuration, formatDuration };
