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

// the value of a double-quoted string that starts at text[0] === '"';
// returns [value, the rest of the line after the closing quote]
function doubleQuoted(text, lineNo) {
  let out = '';
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      const e = ESCAPES[text[i + 1]];
      out += e === undefined ? '\\' + text[i + 1] : e;
      i++;
    } else if (c === '"') {
      return [out, text.slice(i + 1)];
    } else {
      out += c;
    }
  }
  throw new EnvSyntaxError('a double-quoted value is not closed', lineNo);
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
 * twice keeps the last value. Throws EnvSyntaxError naming the line of a
 * line that is not blank, a comment or KEY=VALUE.
 */
function parse(text) {
  const out = Object.create(null);
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
      [value, after] = rest.startsWith('"') ? doubleQuoted(rest, n + 1) : singleQuoted(rest, n + 1);
      const tail = after.trim();
      if (tail !== '' && !tail.startsWith('#')) {
        throw new EnvSyntaxError('text after a closing quote', n + 1);
      }
    } else {
      value = unquoted(rest);
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
  const vars = parse(text);
  for (const [k, v] of Object.entries(vars)) {
    if (options.override || env[k] === undefined) env[k] = v;
  }
  return vars;
}

module.exports = { parse, load, EnvSyntaxError };
