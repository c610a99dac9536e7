/*
 * util — clocks, sleeping, randomness and backoff shared by every part.
 */
#ifndef ORCH_CORE_UTIL_H
#define ORCH_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock, for measuring intervals. */
int64_t util_mono_ms(void);
int64_t util_mono_us(void);
int64_t util_mono_ns(void);

/* Wall clock in milliseconds since the Unix epoch. */
int64_t util_wall_ms(void);

/* Sleeps at least `ms` milliseconds (restarted after signals). */
void util_sleep_ms(int64_t ms);

/* Cryptographically random values (libsodium's randombytes; thread-safe). */
uint64_t util_rand_u64(void);
/* A uniformly random integer in [0, n) (n > 0). */
uint64_t util_rand_below(uint64_t n);
/* Writes 2*nbytes lowercase hex digits and a NUL into out[2*nbytes+1]. */
void util_rand_hex(char *out, size_t nbytes);

/* The value of hex digit c (either case), or -1 when it is not one. */
int util_hexval(char c);

/* Exponential backoff with jitter: a random delay in [cap/2, cap] where
 * cap = min(max_ms, base_ms * 2^attempt), for attempt 0, 1, 2, ... */
int64_t util_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* Initialises libsodium once; safe to call from several threads. Returns 0
 * or ERR_CRYPTO. Every program calls it at start-up (cli/main.c does). */
int util_init(void);

#endif
