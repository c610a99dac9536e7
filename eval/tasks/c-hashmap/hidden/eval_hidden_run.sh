#!/bin/sh
# Builds the acceptance tests of c-hashmap with the project's hashmap.c (under
# AddressSanitizer; leak checking needs ptrace, which the sandbox denies) and runs them.
set -e
bin=${TMPDIR:-/tmp}/eval_hidden_hashmap.$$
cc -g -O1 -Wall -fsanitize=address,undefined -fno-omit-frame-pointer -I. \
	-o "$bin" eval_hidden_hashmap.c hashmap.c
ASAN_OPTIONS=detect_leaks=0 "$bin"
