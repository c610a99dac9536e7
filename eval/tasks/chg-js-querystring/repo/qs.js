'use strict';
// tiny-qs: parse and build URL query strings.
//
//   parse('?q=hello%20world&page=2')   -> { q: 'hello world', page: '2' }
//   stringify({ q: 'a b', page: 2 })   -> 'q=a%20b&page=2'

// decode one component; a malformed escape (%zz, a lone %) is kept as written
function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Parses a query string (a leading '?' is ignored) into an object whose
 * values are strings. A key without '=' gets ''. Empty pairs ('a=1&&b=2')
 * are skipped. The object has no prototype, so keys like '__proto__' are
 * plain keys.
 */
function parse(input, options = {}) {
  if (typeof input !== 'string') {
    throw new TypeError(`parse: expected a string, got ${typeof input}`);
  }
  const sep = options.separator ?? '&';
  const out = Object.create(null);
  let s = input.startsWith('?') ? input.slice(1) : input;
  if (s === '') return out;
  for (const pair of s.split(sep)) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawKey = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    const key = decode(rawKey);
    if (key === '') continue;
    out[key] = decode(rawValue);
  }
  return out;
}

function encode(v) {
  return encodeURIComponent(v).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * Builds a query string (without '?') from an object. Arrays become repeated
 * keys ({ tag: ['a', 'b'] } -> 'tag=a&tag=b'); undefined values are left out;
 * null becomes an empty value; other values go through String(). With
 * options.sort the keys are sorted.
 */
function stringify(obj, options = {}) {
  if (obj === null || typeof obj !== 'object') {
    throw new TypeError('stringify: expected an object');
  }
  const sep = options.separator ?? '&';
  const keys = Object.keys(obj);
  if (options.sort) keys.sort();
  const parts = [];
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    const values = Array.isArray(v) ? v : [v];
    for (const x of values) {
      if (x === undefined) continue;
      parts.push(`${encode(k)}=${x === null ? '' : encode(String(x))}`);
    }
  }
  return parts.join(sep);
}

/** Returns URL with the query of params merged into its own query. */
function withQuery(url, params) {
  const hash = url.indexOf('#');
  const frag = hash === -1 ? '' : url.slice(hash);
  const base = hash === -1 ? url : url.slice(0, hash);
  const q = base.indexOf('?');
  const path = q === -1 ? base : base.slice(0, q);
  const merged = Object.assign(q === -1 ? Object.create(null) : parse(base.slice(q)), params);
  const query = stringify(merged);
  return path + (query ? '?' + query : '') + frag;
}

module.exports = { parse, stringify, withQuery };
