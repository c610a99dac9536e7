'use strict';
// slugify(text, { separator = '-', maxLength }) -> a URL-safe slug of a-z, 0-9
// and the separator.

function slugify(text, options = {}) {
  if (typeof text !== 'string') {
    throw new TypeError(`slugify: expected a string, got ${text === null ? 'null' : typeof text}`);
  }
  const sep = options.separator ?? '-';
  let s = text
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, sep);
  s = trimSep(s, sep);
  if (options.maxLength !== undefined && s.length > options.maxLength) {
    s = trimSep(s.slice(0, options.maxLength), sep);
  }
  return s;
}

function trimSep(s, sep) {
  while (sep && s.startsWith(sep)) s = s.slice(sep.length);
  while (sep && s.endsWith(sep)) s = s.slice(0, -sep.length);
  return s;
}

module.exports = { slugify };
