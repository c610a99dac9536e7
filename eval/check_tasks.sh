#!/usr/bin/env bash
# Checks the eval tasks: every task.json against the format of eval/README.md,
# and in the project's sandbox that the hidden tests fail on the state before
# the work and pass on the reference solution. Ends with `N passed, N failed`.
#
#   eval/check_tasks.sh [--jobs N] [--keep] [--format-only] [ID...]
#
# Needs bin/orchestrator (make) and root for the sandbox; without them it
# checks the format only and says so on a `skipped:` line.
exec python3 "$(dirname "$0")/check_tasks.py" "$@"
