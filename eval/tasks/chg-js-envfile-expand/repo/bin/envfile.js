#!/usr/bin/env node
'use strict';
// envfile [-f FILE] [--override] [-- COMMAND ARGS...]
// Without a command: prints the variables of FILE (default .env) as KEY=VALUE
// lines (values JSON-quoted when they hold spaces or line breaks).
// With a command: runs it with the variables added to its environment.

const { spawnSync } = require('node:child_process');
const { load, EnvSyntaxError } = require('../envfile.js');

function main(argv) {
  let file = '.env';
  let override = false;
  let i = 0;
  for (; i < argv.length; i++) {
    if (argv[i] === '-f') file = argv[++i];
    else if (argv[i] === '--override') override = true;
    else if (argv[i] === '--') { i++; break; } else {
      process.stderr.write(`envfile: unknown argument ${argv[i]}\n`);
      return 2;
    }
  }
  const env = { ...process.env };
  let vars;
  try {
    vars = load(file, { env, override });
  } catch (e) {
    process.stderr.write(`envfile: ${file}: ${e instanceof EnvSyntaxError ? e.message : e.code || e.message}\n`);
    return 1;
  }
  const cmd = argv.slice(i);
  if (cmd.length === 0) {
    for (const [k, v] of Object.entries(vars)) {
      process.stdout.write(`${k}=${/[\s"'#]/.test(v) || v === '' ? JSON.stringify(v) : v}\n`);
    }
    return 0;
  }
  const r = spawnSync(cmd[0], cmd.slice(1), { env, stdio: 'inherit' });
  if (r.error) {
    process.stderr.write(`envfile: ${cmd[0]}: ${r.error.code}\n`);
    return 127;
  }
  return r.status ?? 1;
}

process.exitCode = main(process.argv.slice(2));
