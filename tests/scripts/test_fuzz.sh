#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/) for a few seconds each, in TAP: they
# keep building, their seed corpora keep passing (every regression input a
# fixed finding left there runs first), and a new finding fails the test
# with its input saved under $ORCH_BUILD/fuzz/findings/. `make fuzz` runs
# them longer. FUZZ_TEST_SECONDS (3) sets the time per target.
set -u
cd "$(dirname "$0")/../.."
FUZZ_SECONDS=${FUZZ_TEST_SECONDS:-3} FUZZ_BUILD=${ORCH_BUILD:-build}/fuzz exec tests/fuzz/run.sh --tap
