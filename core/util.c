#include "core/util.h"
#include "core/err.h"

#include <errno.h>
#include <sodium.h>
#include <time.h>

int64_t util_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t util_mono_us(void)
{
	return util_mono_ns() / 1000;
}

int64_t util_mono_ms(void)
{
	return util_mono_ns() / 1000000;
}

int64_t util_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void util_sleep_ms(int64_t ms)
{
	struct timespec req, rem;

	if (ms <= 0)
		return;
	req.tv_sec = ms / 1000;
	req.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&req, &rem) != 0 && errno == EINTR)
		req = rem;
}

int util_init(void)
{
	if (sodium_init() < 0)
		return err_set(ERR_CRYPTO, "libsodium failed to initialise");
	return 0;
}

uint64_t util_rand_u64(void)
{
	uint64_t v;
	randombytes_buf(&v, sizeof(v));
	return v;
}

uint64_t util_rand_below(uint64_t n)
{
	uint64_t lim, v;

	if (n <= 1)
		return 0;
	lim = UINT64_MAX - UINT64_MAX % n;
	do
		v = util_rand_u64();
	while (v >= lim);
	return v % n;
}

void util_rand_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[64];

	while (nbytes > 0) {
		size_t n = nbytes < sizeof(b) ? nbytes : sizeof(b);
		randombytes_buf(b, n);
		for (size_t i = 0; i < n; i++) {
			*out++ = hex[b[i] >> 4];
			*out++ = hex[b[i] & 15];
		}
		nbytes -= n;
	}
	*out = '\0';
}

int64_t util_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms)
{
	int64_t cap = base_ms;
	int64_t lo;

	if (base_ms <= 0)
		return 0;
	for (int i = 0; i < attempt && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	lo = cap / 2;
	return lo + (int64_t)util_rand_below((uint64_t)(cap - lo + 1));
}

int util_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
