#!/usr/bin/env bash
# The eval tasks (eval/tasks): every task.json and its folders follow the
# format of eval/README.md, and for a sample (one new task per language and
# four change tasks) the hidden tests fail on the state before the work and
# pass on the reference solution, inside the project's sandbox. TAP from
# eval/check_tasks.sh; `make eval-check` runs the sandbox steps of every task
# (about a minute on two cores).
set -u
SAMPLE=py-wordfreq,js-lru,go-rpn,sql-orgchart,c-ringbuf,chg-c-ini-section,chg-js-querystring,chg-sql-sales-fanout,chg-py-tasklog-emptyconfig
ORCH_BIN=${ORCH_BIN:?run through make test} BUILD=${ORCH_BUILD:-build} \
	exec python3 eval/check_tasks.py --jobs 1 --sandbox-only "$SAMPLE"
