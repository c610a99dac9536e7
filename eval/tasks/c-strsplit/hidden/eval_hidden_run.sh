#!/bin/sh
# Builds the acceptance tests of c-strsplit with the project's strutil.c (under
# AddressSanitizer; leak checking needs ptrace, which the sandbox denies) and runs them.
set -e
bin=${TMPDIR:-/tmp}/eval_hidden_strutil.$$
cc -g -O1 -Wall -fsanitize=address,undefined -fno-omit-frame-pointer -I. \
	-o "$bin" eval_hidden_strutil.c strutil.c
ASAN_OPTIONS=detect_leaks=0 "$bin"
