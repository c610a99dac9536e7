'use strict';
// envfile: read .env files.
//
//   # a comment
//   export DB_HOST=localhost        ('export ' is allowed and ignored)
//   GREETING="hello\nworld"         (double quotes: \n \t \\ \" escapes)
//   RAW='C:\path\n'                 (single quotes: taken literally)
//   PLAIN = some value  # comment   (unquoted: trimmed, ' #' starts a comment)

const fs = require('node:fs');

class EnvSyntaxError extends Error {
  constructor(message, line) {
    super(`line ${line}: ${message}`);
    this.line = line;
  }
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const ESCAPES = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"' };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

// A reference at text[i] === '$': returns [its value, the index after it], or
// null when the '$' starts no reference (it is then a plain character).
// LOOKUP(name) gives a variable's value or undefined.
function reference(text, i, lookup, lineNo) {
  if (text[i + 1] === '{') {
    const close = text.indexOf('}', i + 2);
    if (close === -1) throw new EnvSyntaxError('a ${ without its closing }', lineNo);
    const inner = text.slice(i + 2, close);
    const m = NAME.exec(inner);
    if (!m) throw new EnvSyntaxError(`not a variable name in \${${inner}}`, lineNo);
    const rest = inner.slice(m[0].length);
    const value = lookup(m[0]);
    if (rest === '') return [value ?? '', close + 1];
    if (!rest.startsWith(':-')) throw new EnvSyntaxError(`unexpected ${JSON.stringify(rest)} in \${${inner}}`, lineNo);
    return [value === undefined || value === '' ? rest.slice(2) : value, close + 1];
  }
  const m = NAME.exec(text.slice(i + 1));
  if (!m) return null;
  return [lookup(m[0]) ?? '', i + 1 + m[0].length];
}

// the value of a double-quoted string that starts at text[0] === '"', with
// escapes and references; returns [value, the rest of the line after the
// closing quote]
function doubleQuoted(text, lineNo, lookup) {
  let out = '';
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      const next = text[i + 1];
      const e = next === '$' ? '$' : ESCAPES[next];
      out += e === undefined ? '\\' + next : e;
      i++;
    } else if (c === '"') {
      return [out, text.slice(i + 1)];
    } else if (c === '$') {
      const r = reference(text, i, lookup, lineNo);
      if (r === null) {
        out += c;
      } else {
        out += r[0];
        i = r[1] - 1;
      }
    } else {
      out += c;
    }
  }
  throw new EnvSyntaxError('a double-quoted value is not closed', lineNo);
}

// an unquoted value (comment removed, trimmed) with \$ and references
function expandUnquoted(text, lineNo, lookup) {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === '$') {
      out += '$';
      i++;
    } else if (text[i] === '$') {
      const r = reference(text, i, lookup, lineNo);
      if (r === null) {
        out += '$';
      } else {
        out += r[0];
        i = r[1] - 1;
      }
    } else {
      out += text[i];
    }
  }
  return out;
}

function singleQuoted(text, lineNo) {
  const end = text.indexOf("'", 1);
  if (end === -1) throw new EnvSyntaxError('a single-quoted value is not closed', lineNo);
  return [text.slice(1, end), text.slice(end + 1)];
}

function unquoted(text) {
  const hash = text.search(/(^|\s)#/);
  return (hash === -1 ? text : text.slice(0, hash)).trim();
}

/**
 * Parses the text of a .env file into an object (no prototype). A key set
 * twice keeps the last value. ${NAME}, $NAME and ${NAME:-default} in
 * unquoted and double-quoted values are replaced by the value of NAME from
 * the lines above, else from options.env (default process.env), else ''.
 * Throws EnvSyntaxError naming the line of a line that is not blank, a
 * comment or KEY=VALUE, or of a ${ that is not closed.
 */
function parse(text, options = {}) {
  const env = options.env ?? process.env;
  const out = Object.create(null);
  const lookup = (name) => (name in out ? out[name] : env[name]);
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let n = 0; n < lines.length; n++) {
    let line = lines[n].trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('export ')) line = line.slice(7).trimStart();
    const eq = line.indexOf('=');
    if (eq === -1) throw new EnvSyntaxError(`expected KEY=VALUE, got ${JSON.stringify(line)}`, n + 1);
    const key = line.slice(0, eq).trim();
    if (!KEY.test(key)) throw new EnvSyntaxError(`not a valid name: ${JSON.stringify(key)}`, n + 1);
    const rest = line.slice(eq + 1).trimStart();
    let value;
    if (rest.startsWith('"') || rest.startsWith("'")) {
      let after;
      [value, after] = rest.startsWith('"') ? doubleQuoted(rest, n + 1, lookup) : singleQuoted(rest, n + 1);
      const tail = after.trim();
      if (tail !== '' && !tail.startsWith('#')) {
        throw new EnvSyntaxError('text after a closing quote', n + 1);
      }
    } else {
      value = expandUnquoted(unquoted(rest), n + 1, lookup);
    }
    out[key] = value;
  }
  return out;
}

/**
 * Reads the file at path and copies its variables into env (default
 * process.env): only variables not already set, unless options.override.
 * Returns the parsed object. A missing file throws unless options.optional.
 */
function load(path = '.env', options = {}) {
  const env = options.env ?? process.env;
  let text;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT' && options.optional) return Object.create(null);
    throw e;
  }
  const vars = parse(text, { env });
  for (const [k, v] of Object.entries(vars)) {
    if (options.override || env[k] === undefined) env[k] = v;
  }
  return vars;
}

module.exports = { parse, load, EnvSyntaxError };
