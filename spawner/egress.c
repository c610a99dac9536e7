/* egress — the allowlisting egress proxy (see egress.h).
 *
 * One accept thread polls the listening sockets of every attachment; each
 * accepted connection gets a thread of its own (small stack) that reads the
 * request, decides, resolves, connects and relays until either side ends.
 * A package manager opens tens of connections, not thousands, so a thread
 * per connection keeps every step a plain blocking call with a deadline.
 * One mutex (p->mu) guards the attachments, their connection lists and the
 * counters; decisions are delivered under the attachment's own callback
 * mutex, which egr_detach takes to close the gate. */
#include "spawner/egress.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEF_MAX_CONNS 32
#define DEF_MAX_BYTES ((int64_t)2 << 30)
#define DEF_MAX_TOTAL 256
#define DEF_CONNECT_MS 10000
#define DEF_IDLE_MS (5 * 60 * 1000)
#define HEAD_MAX 16384
#define HEAD_MS 10000
#define RESP_HEAD_MAX 32768
#define RELAY_CHUNK 65536
#define DETACH_WAIT_MS 2000
#define BASE_DIR "/run/orch-egress"
#define THREAD_STACK (256 * 1024)

/* ---- policies ---- */

enum { PAT_NAME = 1, PAT_SUFFIX, PAT_ADDR };
enum { PORT_WEB = 0, PORT_ANY = -1 }; /* else the port itself */

typedef struct pat {
	int kind;
	char name[256];          /* PAT_NAME, PAT_SUFFIX (without "*.") */
	int family;              /* PAT_ADDR: AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;              /* bits */
	int port;
	char text[300];          /* as given */
} pat;

struct egr_policy {
	pat *v;
	size_t n, cap;
};

int egr_policy_new(egr_policy **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

void egr_policy_free(egr_policy *p)
{
	if (!p)
		return;
	free(p->v);
	free(p);
}

size_t egr_policy_count(const egr_policy *p)
{
	return p ? p->n : 0;
}

egr_policy *egr_policy_dup(const egr_policy *p)
{
	egr_policy *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	if (p && p->n) {
		d->v = malloc(p->n * sizeof(*d->v));
		if (!d->v) {
			free(d);
			return NULL;
		}
		memcpy(d->v, p->v, p->n * sizeof(*d->v));
		d->n = d->cap = p->n;
	}
	return d;
}

void egr_policy_describe(const egr_policy *p, char *out, size_t cap)
{
	size_t at = 0;

	if (cap == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; p && i < p->n && at + 1 < cap; i++) {
		int n = snprintf(out + at, cap - at, "%s%s", i ? ", " : "", p->v[i].text);
		if (n < 0)
			break;
		at += (size_t)n;
	}
}

/* A printable copy of untrusted bytes, \xNN for the rest. */
static void printable(const char *s, size_t n, char *out, size_t cap)
{
	size_t at = 0;

	for (size_t i = 0; i < n && at + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x21 && c <= 0x7e && c != '\\')
			out[at++] = (char)c;
		else
			at += (size_t)snprintf(out + at, cap - at, "\\x%02x", c);
	}
	out[at < cap ? at : cap - 1] = '\0';
}

/* A canonical dotted quad: four parts of 1-3 digits, no leading zero,
 * each <= 255. */
static int dotted_quad(const char *s, size_t n, unsigned char out[4])
{
	int part = 0, digits = 0, v = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (digits == 0 || part > 3)
				return 0;
			out[part++] = (unsigned char)v;
			digits = v = 0;
			continue;
		}
		if (s[i] < '0' || s[i] > '9' || digits == 3 || (digits == 1 && v == 0))
			return 0;
		v = v * 10 + (s[i] - '0');
		digits++;
		if (v > 255)
			return 0;
	}
	return part == 4;
}

/* The last label looks numeric (digits, or 0x and hex digits): the host is
 * an address form for inet_aton, whatever it looks like. */
static int numeric_form(const char *s, size_t n)
{
	size_t start = n;

	while (start > 0 && s[start - 1] != '.')
		start--;
	if (start == n)
		return 0;
	if (n - start > 2 && s[start] == '0' && (s[start + 1] == 'x' || s[start + 1] == 'X')) {
		for (size_t i = start + 2; i < n; i++)
			if (!isxdigit((unsigned char)s[i]))
				return 0;
		return 1;
	}
	for (size_t i = start; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int egr_host_check(const char *host, size_t len, char *norm, size_t cap)
{
	char shown[200];
	size_t label = 0;

	printable(host, len, shown, sizeof(shown));
	if (len == 0)
		return err_set(ERR_INVALID, "an empty host");
	if (host[0] == '[') {
		char inner[64];
		struct in6_addr a6;

		if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(inner))
			return err_set(ERR_INVALID, "'%s': a malformed IPv6 literal", shown);
		memcpy(inner, host + 1, len - 2);
		inner[len - 2] = '\0';
		if (memchr(inner, '%', len - 2))
			return err_set(ERR_INVALID, "'%s': an IPv6 zone id is not allowed", shown);
		for (size_t i = 0; i < len - 2; i++)
			if (!isxdigit((unsigned char)inner[i]) && inner[i] != ':' && inner[i] != '.')
				return err_set(ERR_INVALID, "'%s': a malformed IPv6 literal", shown);
		if (inet_pton(AF_INET6, inner, &a6) != 1)
			return err_set(ERR_INVALID, "'%s': a malformed IPv6 literal", shown);
		if (!inet_ntop(AF_INET6, &a6, norm, (socklen_t)cap))
			return err_set(ERR_INVALID, "'%s': a malformed IPv6 literal", shown);
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c == 0)
			return err_set(ERR_INVALID, "'%s': a NUL byte in the host", shown);
		if (c == '\r' || c == '\n')
			return err_set(ERR_INVALID, "'%s': a line break in the host", shown);
		if (c == ' ' || c == '\t')
			return err_set(ERR_INVALID, "'%s': a space in the host", shown);
		if (c == '@')
			return err_set(ERR_INVALID, "'%s': user information (@) in the host", shown);
		if (c == '.' && i + 1 == len)
			return err_set(ERR_INVALID, "'%s': a trailing dot (name the host without it)",
				       shown);
		if (c == '.' && (i == 0 || host[i - 1] == '.'))
			return err_set(ERR_INVALID, "'%s': an empty label", shown);
		if (c >= 0x80)
			return err_set(ERR_INVALID, "'%s': a byte outside ASCII (use the xn-- form)",
				       shown);
		if (!isalnum(c) && c != '.' && c != '-')
			return err_set(ERR_INVALID, "'%s': the character '%s%c' in the host", shown,
				       c < 0x20 || c == 0x7f ? "\\" : "",
				       c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
	if (len > 253)
		return err_set(ERR_INVALID, "'%.60s...': a host longer than 253 bytes", shown);
	for (size_t i = 0; i <= len; i++) {
		if (i == len || host[i] == '.') {
			if (label > 63)
				return err_set(ERR_INVALID, "'%s': a label longer than 63 bytes", shown);
			if (host[i - 1] == '-' || host[i - label] == '-')
				return err_set(ERR_INVALID, "'%s': a label that starts or ends with '-'",
					       shown);
			label = 0;
			continue;
		}
		label++;
	}
	if (numeric_form(host, len)) {
		unsigned char q[4];
		if (!dotted_quad(host, len, q))
			return err_set(ERR_INVALID,
				       "'%s': a numeric host form other than a dotted quad (decimal, "
				       "octal, hex or short forms are refused)",
				       shown);
	}
	if (len + 1 > cap)
		return err_set(ERR_INVALID, "'%s': too long", shown);
	for (size_t i = 0; i < len; i++)
		norm[i] = (char)tolower((unsigned char)host[i]);
	norm[len] = '\0';
	return 0;
}

static int parse_port(const char *s, size_t n, int *out)
{
	int v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*out = v;
	return 0;
}

/* An address with an optional /prefix ("10.0.0.0/8", "fd00::/8"). */
static int parse_addr(const char *s, size_t n, pat *p)
{
	char tmp[64];
	const char *slash = memchr(s, '/', n);
	size_t an = slash ? (size_t)(slash - s) : n;
	int maxbits;

	if (an == 0 || an >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, an);
	tmp[an] = '\0';
	if (memchr(tmp, ':', an)) {
		if (inet_pton(AF_INET6, tmp, p->addr) != 1)
			return -1;
		p->family = AF_INET6;
		maxbits = 128;
	} else {
		if (!dotted_quad(tmp, an, p->addr))
			return -1;
		p->family = AF_INET;
		maxbits = 32;
	}
	p->prefix = maxbits;
	if (slash) {
		int v = 0;
		size_t k = n - an - 1;
		if (k == 0 || k > 3)
			return -1;
		for (size_t i = 0; i < k; i++) {
			if (slash[1 + i] < '0' || slash[1 + i] > '9')
				return -1;
			v = v * 10 + (slash[1 + i] - '0');
		}
		if (v > maxbits)
			return -1;
		p->prefix = v;
	}
	p->kind = PAT_ADDR;
	return 0;
}

int egr_policy_add(egr_policy *pol, const char *pattern)
{
	pat p;
	size_t n = strlen(pattern);
	const char *host = pattern, *colon = NULL;
	size_t hn;

	memset(&p, 0, sizeof(p));
	if (n == 0 || n >= sizeof(p.text))
		return err_set(ERR_INVALID, "a host pattern must have 1 to %zu characters",
			       sizeof(p.text) - 1);
	snprintf(p.text, sizeof(p.text), "%s", pattern);
	if (pattern[0] == '[') {
		const char *close = strchr(pattern, ']');
		if (!close)
			goto bad;
		host = pattern + 1;
		hn = (size_t)(close - host);
		if (close[1] == '/') { /* [fd00::]/8 */
			const char *end = strchr(close, ':');
			char tmp[80];
			size_t k = end ? (size_t)(end - close - 1) : strlen(close + 1);
			if (hn + k + 1 >= sizeof(tmp))
				goto bad;
			memcpy(tmp, host, hn);
			memcpy(tmp + hn, close + 1, k);
			tmp[hn + k] = '\0';
			if (parse_addr(tmp, hn + k, &p) < 0 || p.family != AF_INET6)
				goto bad;
			colon = end;
		} else {
			if (parse_addr(host, hn, &p) < 0 || p.family != AF_INET6)
				goto bad;
			if (close[1] == ':')
				colon = close + 1;
			else if (close[1])
				goto bad;
		}
	} else if (strchr(pattern, ':') != strrchr(pattern, ':')) {
		/* a bare IPv6 address or block: no port */
		if (parse_addr(pattern, n, &p) < 0)
			goto bad;
	} else {
		colon = strchr(pattern, ':');
		hn = colon ? (size_t)(colon - pattern) : n;
		if (memchr(host, '/', hn)) {
			if (parse_addr(host, hn, &p) < 0)
				goto bad;
		} else if (hn >= 2 && host[0] == '*' && host[1] == '.') {
			if (egr_host_check(host + 2, hn - 2, p.name, sizeof(p.name)) < 0)
				return err_wrap("host pattern '%s'", pattern);
			p.kind = PAT_SUFFIX;
		} else if (dotted_quad(host, hn, p.addr)) {
			p.kind = PAT_ADDR;
			p.family = AF_INET;
			p.prefix = 32;
		} else {
			if (memchr(host, '*', hn))
				return err_set(ERR_INVALID, "host pattern '%s': a '*' may only start it, "
							    "as in *.example.org", pattern);
			if (egr_host_check(host, hn, p.name, sizeof(p.name)) < 0)
				return err_wrap("host pattern '%s'", pattern);
			p.kind = PAT_NAME;
		}
	}
	p.port = PORT_WEB;
	if (colon) {
		if (strcmp(colon + 1, "*") == 0)
			p.port = PORT_ANY;
		else if (parse_port(colon + 1, strlen(colon + 1), &p.port) < 0)
			return err_set(ERR_INVALID, "host pattern '%s': the port must be 1..65535 or *",
				       pattern);
	}
	if (pol->n == pol->cap) {
		size_t nc = pol->cap ? pol->cap * 2 : 8;
		pat *v;
		if (nc > 4096)
			return err_set(ERR_INVALID, "a policy holds at most 4096 host patterns");
		v = realloc(pol->v, nc * sizeof(*v));
		if (!v)
			return err_set(ERR_NOMEM, "out of memory");
		pol->v = v;
		pol->cap = nc;
	}
	pol->v[pol->n++] = p;
	return 0;
bad:
	return err_set(ERR_INVALID,
		       "host pattern '%s' is not a host name, *.domain, address or CIDR block "
		       "(with an optional :port or :*)",
		       pattern);
}

int egr_policy_add_list(egr_policy *p, const char *list)
{
	const char *s = list;

	while (*s) {
		size_t n = strcspn(s, " ,\t\r\n");
		if (n) {
			char one[300];
			if (n >= sizeof(one))
				return err_set(ERR_INVALID, "a host pattern longer than %zu characters",
					       sizeof(one) - 1);
			memcpy(one, s, n);
			one[n] = '\0';
			if (egr_policy_add(p, one) < 0)
				return ERR_INVALID;
		}
		s += n;
		while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
	}
	return 0;
}

static int port_ok(const pat *p, int port)
{
	if (p->port == PORT_ANY)
		return 1;
	if (p->port == PORT_WEB)
		return port == 80 || port == 443;
	return port == p->port;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

/* The IPv4 address an IPv6 address carries for routing purposes (mapped,
 * compatible, NAT64, 6to4), or 0 when none. */
static int v6_embedded_v4(const unsigned char *a, unsigned char v4[4])
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char zero[12] = {0};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 ||
	    (memcmp(a, zero, 12) == 0 && (a[12] | a[13] | a[14] | (a[15] > 1)))) {
		memcpy(v4, a + 12, 4);
		return 1;
	}
	if (a[0] == 0x20 && a[1] == 0x02) {
		memcpy(v4, a + 2, 4);
		return 1;
	}
	return 0;
}

static int addr_match(const pat *p, const struct sockaddr *sa)
{
	unsigned char v4[4];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return p->family == AF_INET && prefix_match((const unsigned char *)&s4->sin_addr, p->addr,
							    p->prefix);
	}
	if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (p->family == AF_INET6)
			return prefix_match(a, p->addr, p->prefix);
		if (p->family == AF_INET && v6_embedded_v4(a, v4) && a[0] == 0 && a[10] == 0xff)
			return prefix_match(v4, p->addr, p->prefix); /* a mapped address */
	}
	return 0;
}

static const char *v4_class(const unsigned char *b)
{
	uint32_t a = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
	static const struct {
		uint32_t net;
		int bits;
		const char *name;
	} special[] = {
		{0x00000000, 8, "'this network' (0.0.0.0/8)"},
		{0x0a000000, 8, "private"},
		{0x64400000, 10, "carrier-grade NAT (cloud metadata lives here too)"},
		{0x7f000000, 8, "loopback"},
		{0xa9fe0000, 16, "link-local (cloud metadata lives here)"},
		{0xac100000, 12, "private"},
		{0xc0a80000, 16, "private"},
		{0xe0000000, 4, "multicast"},
		{0xf0000000, 4, "reserved"},
	};

	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
		uint32_t mask = special[i].bits ? 0xffffffffu << (32 - special[i].bits) : 0;
		if ((a & mask) == special[i].net)
			return special[i].name;
	}
	return NULL;
}

const char *egr_addr_class(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return v4_class((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const unsigned char zero[16] = {0};
		unsigned char v4[4];

		if (memcmp(a, zero, 15) == 0 && a[15] <= 1)
			return a[15] ? "loopback" : "unspecified";
		if (v6_embedded_v4(a, v4))
			return v4_class(v4);
		if ((a[0] & 0xfe) == 0xfc)
			return "private (unique local)";
		if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
			return "link-local";
		if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
			return "site-local";
		if (a[0] == 0xff)
			return "multicast";
		if ((a[0] & 0xe0) != 0x20)
			return "reserved"; /* outside 2000::/3, global unicast */
		return NULL;
	}
	return "not an IP address";
}

/* Whether the policy allows the host (normalised) on `port`. For an IP
 * literal `lit` holds its address. */
static int policy_allows_host(const egr_policy *pol, const char *host, int port,
			      const struct sockaddr *lit)
{
	size_t hl = strlen(host);

	for (size_t i = 0; i < pol->n; i++) {
		const pat *p = &pol->v[i];
		if (!port_ok(p, port))
			continue;
		if (p->kind == PAT_ADDR) {
			if (lit && addr_match(p, lit))
				return 1;
		} else if (lit) {
			continue; /* names never match an address literal */
		} else if (p->kind == PAT_NAME) {
			if (strcmp(p->name, host) == 0)
				return 1;
		} else {
			size_t sl = strlen(p->name);
			if (hl > sl + 1 && host[hl - sl - 1] == '.' && strcmp(host + hl - sl, p->name) == 0)
				return 1;
		}
	}
	return 0;
}

/* Whether an address pattern of the policy names `sa` on `port`. */
static int policy_names_addr(const egr_policy *pol, const struct sockaddr *sa, int port)
{
	for (size_t i = 0; i < pol->n; i++)
		if (pol->v[i].kind == PAT_ADDR && port_ok(&pol->v[i], port) && addr_match(&pol->v[i], sa))
			return 1;
	return 0;
}

/* ---- the proxy ---- */

typedef struct conn conn;

struct egr_attach {
	egr_proxy *p;
	char name[160];
	char sock[108];
	int lfd;
	egr_policy *pol;
	egr_decision_fn fn;
	void *udata;
	pthread_mutex_t cbmu;    /* held while a decision is delivered */
	/* under p->mu */
	char phase[32];
	int on;
	int conns;               /* live connections */
	int detaching;           /* the acceptor closes lfd and drops it */
	int gate_closed;         /* under cbmu: no more callbacks */
	int refs;                /* the owner + one per connection thread */
	conn *list;
	uint64_t allowed, denied;
	atomic_uint_fast64_t bytes;
};

struct egr_proxy {
	egr_config cfg;
	char dir[100];
	int own_dir;             /* remove it on free */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	egr_attach **atts;
	size_t natts, cap;
	int wake[2];
	pthread_t acceptor;
	int started, stopping;
	int threads;             /* connection threads alive */
	int total;               /* connections open */
	uint64_t seq;
};

struct conn {
	egr_attach *a;
	int cfd, ufd;
	int over_limit;          /* accepted past the attachment's connection cap */
	int cut;                 /* egr_detach shut it down */
	conn *next;
	int64_t t0;
	char phase[32];
	/* the decision */
	int allowed, status;
	char method[20];
	char host[300];
	int port;
	char addr[64];
	char reason[400];
	const char *why;         /* the reason's class, for /metrics (static) */
	uint64_t up, down;
};

/* ---- metrics (core/metrics.h; README: "Health and metrics") ---- */

/* A connection's outcome: decision and the class of its reason (a small
 * fixed set: policy for an allowed one; host, phase, address, malformed,
 * connection_limit, byte_limit, resolve, upstream, busy, incomplete for a
 * denied one). */
static void met_decision(int allowed, const char *why)
{
	met_add(met_with(met_counter("orch_egress_connections_total",
				     "connections to the egress proxy, by decision and the class of "
				     "its reason",
				     "decision,reason"),
			 allowed ? "allowed" : "denied", allowed ? "policy" : why ? why : "incomplete"),
		1);
}

static met_series *g_met_up, *g_met_down, *g_met_open, *g_met_workers;
static pthread_once_t g_met_once = PTHREAD_ONCE_INIT;

static void met_init(void)
{
	met_family *b = met_counter("orch_egress_bytes_total",
				    "bytes through the egress proxy: up (worker to server), down",
				    "direction");

	g_met_up = met_with(b, "up");
	g_met_down = met_with(b, "down");
	g_met_open = met_with(met_gauge("orch_egress_connections_open",
					"connections the egress proxy has open", NULL));
	g_met_workers = met_with(met_gauge("orch_egress_workers",
					   "workers attached to the egress proxy (with a network "
					   "policy)",
					   NULL));
}

static void wake(egr_proxy *p)
{
	char c = 1;
	if (write(p->wake[1], &c, 1) < 0) {
		/* full: the acceptor is awake anyway */
	}
}

static void attach_unref_locked(egr_attach *a, int *free_it)
{
	*free_it = --a->refs == 0;
}

static void attach_destroy(egr_attach *a)
{
	egr_policy_free(a->pol);
	pthread_mutex_destroy(&a->cbmu);
	free(a);
}

static int send_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Denies the request with `status` and records why (printf format). */
static void deny(conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void deny(conn *c, int status, const char *fmt, ...)
{
	va_list ap;
	char head[256], body[520];
	const char *text = status == 400   ? "Bad Request"
			   : status == 403 ? "Forbidden"
			   : status == 429 ? "Too Many Requests"
			   : status == 502 ? "Bad Gateway"
			   : status == 503 ? "Service Unavailable"
			   : status == 504 ? "Gateway Timeout"
					   : "Error";
	int bn, hn;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->allowed = 0;
	c->status = status;
	/* the callers of the other classes name theirs after this */
	c->why = status == 400 ? "malformed" : status == 429 ? "connection_limit"
		 : status == 403 ? "host" : status == 503 ? "busy" : "upstream";
	bn = snprintf(body, sizeof(body), "orchestrator egress proxy: %s\n", c->reason);
	if (bn < 0 || (size_t)bn >= sizeof(body))
		bn = (int)strlen(body);
	hn = snprintf(head, sizeof(head),
		      "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		      "Content-Length: %d\r\nConnection: close\r\nX-Orch-Egress: denied\r\n\r\n",
		      status, text, bn);
	if (send_all(c->cfd, head, (size_t)hn) == 0)
		send_all(c->cfd, body, (size_t)bn);
}

/* Reads the request head into hb; 0, or -1 after answering. Refuses bytes
 * that may not appear in a request head as soon as they arrive. */
static int read_head(conn *c, buf *hb, size_t *head_len)
{
	int64_t until = util_mono_ms() + HEAD_MS;
	char chunk[4096];
	size_t scanned = 0;

	for (;;) {
		struct pollfd pf = {.fd = c->cfd, .events = POLLIN};
		int64_t left = until - util_mono_ms();
		ssize_t n;

		if (left <= 0) {
			deny(c, 400, "no complete request head within %d s", HEAD_MS / 1000);
			return -1;
		}
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		n = recv(c->cfd, chunk, hb->max - hb->len < sizeof(chunk) ? hb->max - hb->len : sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(c->reason, sizeof(c->reason), "the client closed before a whole request");
			c->status = 400;
			return -1;
		}
		if (buf_append(hb, chunk, (size_t)n) < 0) {
			deny(c, 400, "a request head over %d bytes", HEAD_MAX);
			return -1;
		}
		for (; scanned < hb->len; scanned++) {
			unsigned char ch = (unsigned char)hb->data[scanned];
			if (ch == '\n' && (scanned == 0 || hb->data[scanned - 1] != '\r')) {
				deny(c, 400, "a line feed without carriage return in the request head");
				return -1;
			}
			if (ch == '\r' && scanned + 1 < hb->len && hb->data[scanned + 1] != '\n') {
				deny(c, 400, "a carriage return inside a line of the request head");
				return -1;
			}
			if (ch == 0) {
				deny(c, 400, "a NUL byte in the request head");
				return -1;
			}
			if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') || ch == 0x7f) {
				deny(c, 400, "a control byte 0x%02x in the request head", ch);
				return -1;
			}
			if (ch == '\n' && scanned >= 3 && memcmp(hb->data + scanned - 3, "\r\n\r\n", 4) == 0) {
				*head_len = scanned + 1;
				return 0;
			}
		}
		if (hb->len >= hb->max) {
			deny(c, 400, "a request head over %d bytes", HEAD_MAX);
			return -1;
		}
	}
}

/* Splits "host:port" or "[v6]:port" (CONNECT) or "host[:port]" (http). */
static int split_authority(conn *c, const char *s, size_t n, int need_port, int def_port,
			   const char **host, size_t *hn)
{
	const char *colon = NULL;

	if (memchr(s, '@', n)) {
		char shown[200];
		printable(s, n, shown, sizeof(shown));
		snprintf(c->host, sizeof(c->host), "%s", shown);
		deny(c, 400, "'%s': user information (@) in the target is not allowed", shown);
		return -1;
	}
	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (close && (size_t)(close - s) + 1 < n) {
			if (close[1] != ':')
				goto bad;
			colon = close + 1;
		} else if (!close) {
			goto bad;
		}
		*hn = close ? (size_t)(close - s) + 1 : n;
	} else {
		for (size_t i = n; i > 0; i--)
			if (s[i - 1] == ':') {
				colon = s + i - 1;
				break;
			}
		*hn = colon ? (size_t)(colon - s) : n;
	}
	*host = s;
	if (colon) {
		if (parse_port(colon + 1, (size_t)(s + n - colon - 1), &c->port) < 0) {
			char shown[200];
			printable(s, n, shown, sizeof(shown));
			snprintf(c->host, sizeof(c->host), "%s", shown);
			deny(c, 400, "'%s': the port must be a number from 1 to 65535", shown);
			return -1;
		}
	} else if (need_port) {
		goto bad;
	} else {
		c->port = def_port;
	}
	return 0;
bad : {
	char shown[200];
	printable(s, n, shown, sizeof(shown));
	snprintf(c->host, sizeof(c->host), "%s", shown);
	deny(c, 400, "'%s' is not host:port", shown);
	return -1;
}
}

static int connect_one(conn *c, const struct sockaddr *sa, socklen_t len, int64_t until, int *timed_out)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int err = 0;
	socklen_t el = sizeof(err);

	if (fd < 0)
		return -1;
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		err = errno;
		goto fail;
	}
	for (;;) {
		struct pollfd pf[2] = {{.fd = fd, .events = POLLOUT}, {.fd = c->cfd, .events = POLLIN}};
		int64_t left = until - util_mono_ms();
		int r;
		if (left <= 0) {
			*timed_out = 1;
			err = ETIMEDOUT;
			goto fail;
		}
		r = poll(pf, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0 && (pf[1].revents & (POLLHUP | POLLERR))) {
			err = ECONNABORTED;
			goto fail;
		}
		if (r > 0 && pf[0].revents)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		if (!err)
			err = errno;
		goto fail;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
fail:
	close(fd);
	errno = err;
	return -1;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
	const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
						 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (!inet_ntop(sa->sa_family, a, out, (socklen_t)cap))
		snprintf(out, cap, "?");
}

/* Resolves, checks and connects; the upstream fd, or -1 after answering. */
static int open_upstream(conn *c, const char *host, const struct sockaddr *lit, socklen_t litlen)
{
	egr_attach *a = c->a;
	const egr_config *cfg = &a->p->cfg;
	struct addrinfo hints, *res = NULL;
	int64_t until = util_mono_ms() + cfg->connect_timeout_ms;
	int fd = -1, timed_out = 0, gai, last_err = 0;
	char tried[64] = "";

	if (lit) {
		const char *cls = egr_addr_class(lit);
		if (cls && !policy_names_addr(a->pol, lit, c->port)) {
			deny(c, 403, "%s is a %s address, which the policy does not name", host, cls);
			c->why = "address";
			return -1;
		}
		addr_text(lit, c->addr, sizeof(c->addr));
		fd = connect_one(c, lit, litlen, until, &timed_out);
		last_err = errno;
		snprintf(tried, sizeof(tried), "%s", c->addr);
		goto connected;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	gai = getaddrinfo(host, NULL, &hints, &res);
	if (gai != 0) {
		deny(c, 502, "cannot resolve %s: %s", host, gai_strerror(gai));
		c->why = "resolve";
		return -1;
	}
	/* every address first: one that is not public refuses the name */
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		const char *cls;
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		cls = egr_addr_class(ai->ai_addr);
		if (cls && !policy_names_addr(a->pol, ai->ai_addr, c->port)) {
			char at[64];
			addr_text(ai->ai_addr, at, sizeof(at));
			snprintf(c->addr, sizeof(c->addr), "%s", at);
			freeaddrinfo(res);
			deny(c, 403, "%s resolves to %s, a %s address, which the policy does not name",
			     host, at, cls);
			c->why = "address";
			c->addr[0] = '\0';
			return -1;
		}
	}
	for (struct addrinfo *ai = res; ai && fd < 0 && !timed_out; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)c->port);
		addr_text(ai->ai_addr, c->addr, sizeof(c->addr));
		if (!tried[0])
			snprintf(tried, sizeof(tried), "%s", c->addr);
		fd = connect_one(c, ai->ai_addr, ai->ai_addrlen, until, &timed_out);
		if (fd < 0)
			last_err = errno;
	}
	freeaddrinfo(res);
connected:
	if (fd < 0) {
		if (timed_out)
			deny(c, 504, "no connection to %s:%d within %lld ms", host, c->port,
			     (long long)cfg->connect_timeout_ms);
		else
			deny(c, 502, "cannot connect to %s:%d (%s): %s", host, c->port, tried,
			     strerror(last_err));
		c->addr[0] = '\0';
		return -1;
	}
	return fd;
}

/* One header line's name equals `name` (without case). */
static int header_is(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);
	return n > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

/* Rewrites a plain HTTP request head for the origin: origin-form target,
 * Host from the target, no hop-by-hop headers, Connection: close. */
static int rewrite_request(buf *out, const char *method, const char *path, const char *version,
			   const char *host_hdr, const char *head, size_t len)
{
	const char *p = strstr(head, "\r\n") + 2;
	const char *end = head + len - 2; /* the final empty line */
	int rc = buf_printf(out, "%s %s %s\r\nHost: %s\r\n", method, path, version, host_hdr);

	while (rc == 0 && p < end) {
		const char *nl = strstr(p, "\r\n");
		size_t n = (size_t)(nl - p);
		if (!(header_is(p, n, "host") || header_is(p, n, "connection") ||
		      header_is(p, n, "proxy-connection") || header_is(p, n, "proxy-authorization") ||
		      header_is(p, n, "keep-alive") || header_is(p, n, "te") ||
		      header_is(p, n, "upgrade"))) {
			rc = buf_append(out, p, n);
			if (rc == 0)
				rc = buf_puts(out, "\r\n");
		}
		p = nl + 2;
	}
	if (rc == 0)
		rc = buf_puts(out, "Connection: close\r\n\r\n");
	return rc;
}

/* The same for the response head: Connection: close, no keep-alive. */
static int rewrite_response(buf *out, const char *head, size_t len)
{
	const char *p = head, *end = head + len - 2;
	int rc = 0, first = 1;

	while (rc == 0 && p < end) {
		const char *nl = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
		size_t n;
		if (!nl)
			break;
		n = (size_t)(nl - p);
		if (first || !(header_is(p, n, "connection") || header_is(p, n, "keep-alive") ||
			       header_is(p, n, "proxy-connection"))) {
			rc = buf_append(out, p, n + 2);
		}
		first = 0;
		p = nl + 2;
	}
	if (rc == 0)
		rc = buf_puts(out, "Connection: close\r\n\r\n");
	return rc;
}

/* Counts n bytes against the attachment; 1 when its limit is passed. */
static int count_bytes(conn *c, uint64_t n, int up)
{
	egr_attach *a = c->a;
	uint64_t total = atomic_fetch_add(&a->bytes, n) + n;

	met_add(up ? g_met_up : g_met_down, (double)n);
	if (up)
		c->up += n;
	else
		c->down += n;
	return total > (uint64_t)a->p->cfg.max_bytes;
}

/* Passes bytes both ways until both sides ended, the idle timeout, the byte
 * limit or a cut. `resp_rewrite` holds back the response head to rewrite it. */
static void relay(conn *c, int resp_rewrite)
{
	const egr_config *cfg = &c->a->p->cfg;
	char *chunk = malloc(RELAY_CHUNK);
	int c_open = 1, u_open = 1;
	buf rh;

	buf_init(&rh, RESP_HEAD_MAX);
	if (!chunk) {
		snprintf(c->reason, sizeof(c->reason), "out of memory");
		return;
	}
	while (c_open || u_open) {
		struct pollfd pf[2];
		int n = 0, ic = -1, iu = -1, r;

		if (c_open) {
			ic = n;
			pf[n++] = (struct pollfd){.fd = c->cfd, .events = POLLIN};
		}
		if (u_open) {
			iu = n;
			pf[n++] = (struct pollfd){.fd = c->ufd, .events = POLLIN};
		}
		r = poll(pf, (nfds_t)n, (int)cfg->idle_timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			snprintf(c->reason, sizeof(c->reason), "idle for %lld s: cut",
				 (long long)(cfg->idle_timeout_ms / 1000));
			break;
		}
		if (r < 0)
			break;
		if (ic >= 0 && pf[ic].revents) {
			ssize_t k = recv(c->cfd, chunk, RELAY_CHUNK, 0);
			if (k <= 0) {
				if (k < 0 && errno == EINTR)
					continue;
				c_open = 0;
				shutdown(c->ufd, SHUT_WR);
				if (c->cut)
					break;
			} else {
				if (count_bytes(c, (uint64_t)k, 1)) {
					snprintf(c->reason, sizeof(c->reason),
						 "the byte limit (%lld bytes) was reached: cut",
						 (long long)cfg->max_bytes);
					break;
				}
				if (send_all(c->ufd, chunk, (size_t)k) < 0)
					break;
			}
		}
		if (iu >= 0 && pf[iu].revents) {
			ssize_t k = recv(c->ufd, chunk, RELAY_CHUNK, 0);
			if (k <= 0) {
				if (k < 0 && errno == EINTR)
					continue;
				u_open = 0;
				if (rh.len && send_all(c->cfd, rh.data, rh.len) < 0)
					break;
				buf_reset(&rh);
				resp_rewrite = 0;
				shutdown(c->cfd, SHUT_WR);
				if (c->cut)
					break;
			} else {
				if (count_bytes(c, (uint64_t)k, 0)) {
					snprintf(c->reason, sizeof(c->reason),
						 "the byte limit (%lld bytes) was reached: cut",
						 (long long)cfg->max_bytes);
					break;
				}
				if (resp_rewrite) {
					char *e;
					if (buf_append(&rh, chunk, (size_t)k) < 0) {
						/* no head end within the cap: pass it as it is */
						if (send_all(c->cfd, rh.data, rh.len) < 0 ||
						    send_all(c->cfd, chunk, (size_t)k) < 0)
							break;
						buf_reset(&rh);
						resp_rewrite = 0;
						continue;
					}
					e = memmem(rh.data, rh.len, "\r\n\r\n", 4);
					if (e) {
						size_t hl = (size_t)(e - rh.data) + 4;
						buf nh;
						int bad;
						buf_init(&nh, RESP_HEAD_MAX + 64);
						bad = rewrite_response(&nh, rh.data, hl) < 0 ||
						      send_all(c->cfd, nh.data, nh.len) < 0 ||
						      (rh.len > hl &&
						       send_all(c->cfd, rh.data + hl, rh.len - hl) < 0);
						buf_free(&nh);
						buf_reset(&rh);
						resp_rewrite = 0;
						if (bad)
							break;
					}
				} else if (send_all(c->cfd, chunk, (size_t)k) < 0) {
					break;
				}
			}
		}
	}
	if (c->cut && !c->reason[0])
		snprintf(c->reason, sizeof(c->reason), "cut: the worker ended");
	buf_free(&rh);
	free(chunk);
}

/* The connection limit is reached: reads what it can of the request for the
 * decision's line (method, host), then refuses it with 429. */
static void refuse_over_limit(conn *c)
{
	buf hb;
	size_t head_len = 0;

	buf_init(&hb, HEAD_MAX);
	if (read_head(c, &hb, &head_len) == 0) {
		const char *sp = memchr(hb.data, ' ', head_len);
		if (sp) {
			size_t ml = (size_t)(sp - hb.data);
			const char *sp2 = memchr(sp + 1, ' ', head_len - (ml + 1));
			snprintf(c->method, sizeof(c->method), "%.*s",
				 (int)(ml < sizeof(c->method) - 1 ? ml : 0), hb.data);
			if (sp2)
				printable(sp + 1, (size_t)(sp2 - sp - 1), c->host, sizeof(c->host));
		}
	}
	deny(c, 429, "the connection limit (%d at once) of this worker is reached",
	     c->a->p->cfg.max_conns);
	buf_free(&hb);
}

/* Splits the request line of the head `hb` (which read_head ended with
 * CRLF) into c->method, `target` and `version` (capacity HEAD_MAX and 16).
 * -1 after deny() when it is not "METHOD target HTTP/1.x". */
static int parse_request_line(conn *c, const buf *hb, char *target, char *version)
{
	char line[HEAD_MAX];
	const char *eol = strstr(hb->data, "\r\n");
	size_t ll = (size_t)(eol - hb->data);
	const char *sp1, *sp2;

	memcpy(line, hb->data, ll);
	line[ll] = '\0';
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') || sp2 == sp1 + 1 || sp1 == line ||
	    (size_t)(sp1 - line) >= sizeof(c->method)) {
		char shown[200];
		printable(line, ll, shown, sizeof(shown));
		deny(c, 400, "'%s' is not 'METHOD target HTTP/1.1' (spaces in the target?)", shown);
		return -1;
	}
	snprintf(c->method, sizeof(c->method), "%.*s", (int)(sp1 - line), line);
	snprintf(target, HEAD_MAX, "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
	snprintf(version, 16, "%s", sp2 + 1);
	for (const char *m = c->method; *m; m++) {
		if (*m < 'A' || *m > 'Z') {
			deny(c, 400, "a malformed method");
			return -1;
		}
	}
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
		deny(c, 400, "unsupported protocol version (HTTP/1.1 or HTTP/1.0)");
		return -1;
	}
	return 0;
}

/* The authority of `target`: host:port of a CONNECT, the http:// URL's of a
 * plain request (then *rest: its path and query, "" for none). Sets
 * c->port; *host and *hn point into `target`. -1 after deny(). */
static int parse_target(conn *c, const char *target, int is_connect, const char **host,
			size_t *hn, const char **rest)
{
	size_t tl = strlen(target), an;

	*rest = "";
	if (is_connect)
		return split_authority(c, target, tl, 1, 0, host, hn);
	if (strncasecmp(target, "https://", 8) == 0) {
		printable(target, tl > 120 ? 120 : tl, c->host, sizeof(c->host));
		deny(c, 400, "an https:// URL in a plain request: use CONNECT (set HTTPS_PROXY)");
		return -1;
	}
	if (strncasecmp(target, "http://", 7) != 0) {
		printable(target, tl > 120 ? 120 : tl, c->host, sizeof(c->host));
		deny(c, 400, "this is a forward proxy: the target must be http://host/path or "
			     "CONNECT host:port");
		return -1;
	}
	an = strcspn(target + 7, "/?#\\");
	if (target[7 + an] == '\\') {
		printable(target, tl > 120 ? 120 : tl, c->host, sizeof(c->host));
		deny(c, 400, "a backslash in the URL's authority");
		return -1;
	}
	if (split_authority(c, target + 7, an, 0, 80, host, hn) < 0)
		return -1;
	*rest = target + 7 + an;
	return 0;
}

/* The address a literal host names (`bracketed`: an IPv6 literal, its
 * normal form `norm`; else a canonical dotted quad) at `port`, into `lit`.
 * Its length, or 0 when the host is a name. */
static socklen_t literal_address(int bracketed, const char *norm, int port,
				 struct sockaddr_storage *lit)
{
	unsigned char q[4];

	memset(lit, 0, sizeof(*lit));
	if (bracketed) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)lit;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, norm, &s6->sin6_addr);
		return sizeof(*s6);
	}
	if (!dotted_quad(norm, strlen(norm), q))
		return 0;
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)lit;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		memcpy(&s4->sin_addr, q, 4);
	}
	return sizeof(struct sockaddr_in);
}

/* A plain request, allowed and connected: sent on with its head rewritten
 * (Host from the target, path-only target, Connection: close), then
 * relayed. */
static void forward_plain(conn *c, int bracketed, const char *norm, const char *rest,
			  const char *version, const buf *hb, size_t head_len)
{
	buf req;
	char host_hdr[300];
	int bad;

	if (bracketed)
		snprintf(host_hdr, sizeof(host_hdr), "[%s]", norm);
	else
		snprintf(host_hdr, sizeof(host_hdr), "%s", norm);
	if (c->port != 80) {
		size_t l = strlen(host_hdr);
		snprintf(host_hdr + l, sizeof(host_hdr) - l, ":%d", c->port);
	}
	buf_init(&req, HEAD_MAX + 512);
	c->status = 200;
	bad = rewrite_request(&req, c->method, rest[0] ? rest : "/", version, host_hdr, hb->data,
			      head_len) < 0;
	if (!bad && hb->len > head_len)
		bad = buf_append(&req, hb->data + head_len, hb->len - head_len) < 0;
	if (!bad && count_bytes(c, req.len, 1) == 0)
		bad = send_all(c->ufd, req.data, req.len) < 0;
	buf_free(&req);
	if (!bad)
		relay(c, 1);
}

/* Whether the worker may have this connection now: its phase has the
 * network, the policy names the host and port (or the literal address
 * `lit`), its bytes are under the limit. -1 after deny(). */
static int admit(conn *c, const char *norm, const struct sockaddr *lit)
{
	egr_attach *a = c->a;
	int on;

	pthread_mutex_lock(&a->p->mu);
	on = a->on;
	pthread_mutex_unlock(&a->p->mu);
	if (!on) {
		deny(c, 403, "the %s phase has no network (the project's policy gives it to other "
			     "phases only)",
		     c->phase[0] ? c->phase : "current");
		c->why = "phase";
		return -1;
	}
	if (!policy_allows_host(a->pol, norm, c->port, lit)) {
		deny(c, 403, "%s:%d is not in the project's network policy", norm, c->port);
		return -1;
	}
	if (atomic_load(&a->bytes) >= (uint64_t)a->p->cfg.max_bytes) {
		deny(c, 403, "the byte limit (%lld bytes) of this worker is reached",
		     (long long)a->p->cfg.max_bytes);
		c->why = "byte_limit";
		return -1;
	}
	return 0;
}

/* Reads the request, decides, connects and relays. */
static void serve(conn *c)
{
	egr_attach *a = c->a;
	buf hb;
	size_t head_len = 0, hn;
	char target[HEAD_MAX], version[16], norm[256];
	const char *host, *rest;
	int is_connect, fd;
	struct sockaddr_storage lit;
	socklen_t litlen;
	struct timeval tv;

	if (c->over_limit) {
		refuse_over_limit(c);
		return;
	}
	buf_init(&hb, HEAD_MAX);
	if (read_head(c, &hb, &head_len) < 0 || parse_request_line(c, &hb, target, version) < 0)
		goto done;
	is_connect = strcmp(c->method, "CONNECT") == 0;
	if (parse_target(c, target, is_connect, &host, &hn, &rest) < 0)
		goto done;
	if (egr_host_check(host, hn, norm, sizeof(norm)) < 0) {
		printable(host, hn, c->host, sizeof(c->host));
		deny(c, 400, "%s", err_last());
		goto done;
	}
	snprintf(c->host, sizeof(c->host), "%s", norm);
	litlen = literal_address(host[0] == '[', norm, c->port, &lit);
	if (admit(c, norm, litlen ? (struct sockaddr *)&lit : NULL) < 0)
		goto done;
	fd = open_upstream(c, norm, litlen ? (struct sockaddr *)&lit : NULL, litlen);
	if (fd < 0)
		goto done;
	pthread_mutex_lock(&a->p->mu);
	c->ufd = fd;
	if (c->cut)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&a->p->mu);
	tv.tv_sec = a->p->cfg.idle_timeout_ms / 1000;
	tv.tv_usec = (a->p->cfg.idle_timeout_ms % 1000) * 1000;
	setsockopt(c->cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->ufd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->allowed = 1;
	if (!is_connect) {
		forward_plain(c, host[0] == '[', norm, rest, version, &hb, head_len);
		goto done;
	}
	{
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		c->status = 200;
		if (send_all(c->cfd, ok, sizeof(ok) - 1) < 0)
			goto done;
	}
	/* bytes the client sent after the head (a TLS hello) go on */
	if (hb.len > head_len && count_bytes(c, hb.len - head_len, 1) == 0)
		send_all(c->ufd, hb.data + head_len, hb.len - head_len);
	relay(c, 0);
done:
	buf_free(&hb);
}

static void deliver(conn *c)
{
	egr_attach *a = c->a;
	egr_decision d;

	memset(&d, 0, sizeof(d));
	d.name = a->name;
	d.allowed = c->allowed;
	d.status = c->status;
	d.method = c->method;
	d.host = c->host;
	d.port = c->port;
	d.addr = c->addr;
	d.reason = c->reason;
	d.phase = c->phase;
	d.bytes_up = c->up;
	d.bytes_down = c->down;
	d.ms = util_mono_ms() - c->t0;
	pthread_mutex_lock(&a->cbmu);
	if (!a->gate_closed && a->fn)
		a->fn(a->udata, &d);
	pthread_mutex_unlock(&a->cbmu);
}

static void *conn_main(void *arg)
{
	conn *c = arg;
	egr_attach *a = c->a;
	egr_proxy *p = a->p;
	int free_it;

	serve(c);
	met_decision(c->allowed, c->why);
	pthread_mutex_lock(&p->mu);
	if (c->allowed)
		a->allowed++;
	else
		a->denied++;
	pthread_mutex_unlock(&p->mu);
	deliver(c);
	pthread_mutex_lock(&p->mu);
	for (conn **pp = &a->list; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	a->conns--;
	p->total--;
	met_add(g_met_open, -1);
	attach_unref_locked(a, &free_it);
	p->threads--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (free_it)
		attach_destroy(a);
	free(c);
	return NULL;
}

/* Takes a connection of `a` (p->mu held). */
static void take(egr_proxy *p, egr_attach *a, int fd)
{
	conn *c = calloc(1, sizeof(*c));
	pthread_attr_t at;
	pthread_t t;

	if (!c) {
		close(fd);
		return;
	}
	c->a = a;
	c->cfd = fd;
	c->ufd = -1;
	c->t0 = util_mono_ms();
	snprintf(c->phase, sizeof(c->phase), "%s", a->phase);
	if (p->total >= p->cfg.max_total) {
		static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
					   "Connection: close\r\n\r\n";
		send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		a->denied++;
		met_decision(0, "busy");
		free(c);
		log_warn("egress", "the proxy's connection limit (%d) is reached: a connection of %s "
				   "was refused", p->cfg.max_total, a->name);
		return;
	}
	c->over_limit = a->conns >= p->cfg.max_conns;
	c->next = a->list;
	a->list = c;
	a->conns++;
	a->refs++;
	p->total++;
	met_add(g_met_open, 1);
	p->threads++;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, THREAD_STACK);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, conn_main, c) != 0) {
		a->list = c->next;
		a->conns--;
		a->refs--;
		p->total--;
		met_add(g_met_open, -1);
		p->threads--;
		close(fd);
		free(c);
		log_warn("egress", "cannot start a connection thread: %s", strerror(errno));
	}
	pthread_attr_destroy(&at);
}

static void *accept_main(void *arg)
{
	egr_proxy *p = arg;
	struct pollfd *pf = NULL;
	egr_attach **who = NULL;
	size_t cap = 0;

	for (;;) {
		size_t n = 0;
		int r;

		pthread_mutex_lock(&p->mu);
		/* drop the attachments being detached */
		for (size_t i = 0; i < p->natts;) {
			egr_attach *a = p->atts[i];
			if (a->detaching) {
				if (a->lfd >= 0)
					close(a->lfd);
				a->lfd = -1;
				unlink(a->sock);
				p->atts[i] = p->atts[--p->natts];
				pthread_cond_broadcast(&p->cv);
				continue;
			}
			i++;
		}
		if (p->stopping && p->natts == 0) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		if (cap < p->natts + 1) {
			size_t nc = p->natts + 16;
			struct pollfd *npf = realloc(pf, nc * sizeof(*pf));
			egr_attach **nw;
			if (npf)
				pf = npf;
			nw = npf ? realloc(who, nc * sizeof(*who)) : NULL;
			if (nw) {
				who = nw;
				cap = nc;
			}
		}
		pf[n] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		who[n++] = NULL;
		for (size_t i = 0; i < p->natts && n < cap; i++) {
			pf[n] = (struct pollfd){.fd = p->atts[i]->lfd, .events = POLLIN};
			who[n++] = p->atts[i];
		}
		pthread_mutex_unlock(&p->mu);
		r = poll(pf, (nfds_t)n, 1000);
		if (r <= 0)
			continue;
		if (pf[0].revents) {
			char drain[64];
			while (read(p->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		pthread_mutex_lock(&p->mu);
		for (size_t i = 1; i < n; i++) {
			egr_attach *a = who[i];
			int still = 0;
			if (!pf[i].revents)
				continue;
			for (size_t k = 0; k < p->natts; k++)
				still |= p->atts[k] == a;
			if (!still || a->detaching)
				continue;
			for (int k = 0; k < 16; k++) {
				int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
				if (fd < 0)
					break;
				take(p, a, fd);
			}
		}
		pthread_mutex_unlock(&p->mu);
	}
	free(pf);
	free(who);
	return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Removes the folders of dead processes under BASE_DIR. */
static void sweep_dead(void)
{
	DIR *d = opendir(BASE_DIR);
	struct dirent *e;

	if (!d)
		return;
	for (e = readdir(d); e; e = readdir(d)) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		char path[300];
		if ((*end && *end != '-') || pid <= 0 || end == e->d_name)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", BASE_DIR, e->d_name);
		nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	}
	closedir(d);
}

int egr_new(egr_proxy **out, const egr_config *cfg)
{
	egr_proxy *p = calloc(1, sizeof(*p));
	int rc = 0;

	*out = NULL;
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	pthread_once(&g_met_once, met_init);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->wake[0] = p->wake[1] = -1;
	if (cfg)
		p->cfg = *cfg;
	p->cfg.dir = NULL;
	if (p->cfg.max_conns <= 0)
		p->cfg.max_conns = DEF_MAX_CONNS;
	if (p->cfg.max_bytes <= 0)
		p->cfg.max_bytes = DEF_MAX_BYTES;
	if (p->cfg.max_total <= 0)
		p->cfg.max_total = DEF_MAX_TOTAL;
	if (p->cfg.connect_timeout_ms <= 0)
		p->cfg.connect_timeout_ms = DEF_CONNECT_MS;
	if (p->cfg.idle_timeout_ms <= 0)
		p->cfg.idle_timeout_ms = DEF_IDLE_MS;
	if (cfg && cfg->dir) {
		snprintf(p->dir, sizeof(p->dir), "%s", cfg->dir);
		if (strlen(cfg->dir) >= sizeof(p->dir) - 12) {
			rc = err_set(ERR_INVALID, "the egress socket folder %s is too long for a unix "
						  "socket path (at most 87 bytes)", cfg->dir);
			goto done;
		}
	} else {
		if (mkdir(BASE_DIR, 0711) < 0 && errno != EEXIST) {
			rc = err_set(ERR_IO, "cannot create %s: %s", BASE_DIR, strerror(errno));
			goto done;
		}
		sweep_dead();
		static atomic_int n_proxies;
		snprintf(p->dir, sizeof(p->dir), "%s/%ld-%d", BASE_DIR, (long)getpid(),
			 atomic_fetch_add(&n_proxies, 1));
		p->own_dir = 1;
	}
	if (mkdir(p->dir, 0711) == 0) {
		p->own_dir = 1; /* a folder it made is its own to remove */
	} else if (errno != EEXIST) {
		rc = err_set(ERR_IO, "cannot create the egress socket folder %s: %s", p->dir,
			     strerror(errno));
		goto done;
	}
	if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = err_set(ERR_IO, "pipe: %s", strerror(errno));
		goto done;
	}
	if (pthread_create(&p->acceptor, NULL, accept_main, p) != 0) {
		rc = err_set(ERR_IO, "cannot start the egress proxy's thread");
		goto done;
	}
	p->started = 1;
	*out = p;
	p = NULL;
done:
	egr_free(p);
	return rc;
}

void egr_free(egr_proxy *p)
{
	if (!p)
		return;
	if (p->started) {
		egr_attach **left = NULL;
		size_t n;

		pthread_mutex_lock(&p->mu);
		n = p->natts;
		left = n ? malloc(n * sizeof(*left)) : NULL;
		if (left)
			memcpy(left, p->atts, n * sizeof(*left));
		pthread_mutex_unlock(&p->mu);
		for (size_t i = 0; left && i < n; i++)
			egr_detach(left[i]);
		free(left);
		pthread_mutex_lock(&p->mu);
		p->stopping = 1;
		pthread_mutex_unlock(&p->mu);
		wake(p);
		pthread_join(p->acceptor, NULL);
		pthread_mutex_lock(&p->mu);
		while (p->threads > 0)
			pthread_cond_wait(&p->cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	if (p->wake[0] >= 0)
		close(p->wake[0]);
	if (p->wake[1] >= 0)
		close(p->wake[1]);
	if (p->own_dir) /* its sockets' folder, and what the sandboxes put there */
		nftw(p->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	free(p->atts);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int egr_attach_new(egr_proxy *p, egr_attach **out, const char *name, const egr_policy *pol,
		   egr_decision_fn fn, void *udata)
{
	egr_attach *a = calloc(1, sizeof(*a));
	struct sockaddr_un sa;
	int rc = 0;

	*out = NULL;
	if (!a)
		return err_set(ERR_NOMEM, "out of memory");
	a->p = p;
	a->lfd = -1;
	a->refs = 1;
	a->fn = fn;
	a->udata = udata;
	pthread_mutex_init(&a->cbmu, NULL);
	printable(name ? name : "", name ? strlen(name) : 0, a->name, sizeof(a->name));
	snprintf(a->phase, sizeof(a->phase), "-");
	a->pol = egr_policy_dup(pol);
	if (!a->pol) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto fail;
	}
	pthread_mutex_lock(&p->mu);
	p->seq++;
	snprintf(a->sock, sizeof(a->sock), "%s/%llu.sock", p->dir, (unsigned long long)p->seq);
	pthread_mutex_unlock(&p->mu);
	unlink(a->sock);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->sock);
	a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (a->lfd < 0 || bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(a->sock, 0666) < 0 || listen(a->lfd, 128) < 0) {
		rc = err_set(ERR_IO, "cannot listen on %s: %s", a->sock, strerror(errno));
		goto fail;
	}
	pthread_mutex_lock(&p->mu);
	if (p->natts == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 16;
		egr_attach **v = realloc(p->atts, nc * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&p->mu);
			rc = err_set(ERR_NOMEM, "out of memory");
			goto fail;
		}
		p->atts = v;
		p->cap = nc;
	}
	p->atts[p->natts++] = a;
	pthread_mutex_unlock(&p->mu);
	met_add(g_met_workers, 1);
	wake(p);
	*out = a;
	return 0;
fail:
	if (a->lfd >= 0) {
		close(a->lfd);
		unlink(a->sock);
	}
	attach_destroy(a);
	return rc;
}

const char *egr_attach_socket(const egr_attach *a)
{
	return a->sock;
}

void egr_attach_phase(egr_attach *a, const char *phase, int on)
{
	pthread_mutex_lock(&a->p->mu);
	snprintf(a->phase, sizeof(a->phase), "%s", phase ? phase : "-");
	a->on = on;
	pthread_mutex_unlock(&a->p->mu);
}

void egr_attach_stats(egr_attach *a, egr_stats *out)
{
	pthread_mutex_lock(&a->p->mu);
	out->allowed = a->allowed;
	out->denied = a->denied;
	out->bytes = atomic_load(&a->bytes);
	pthread_mutex_unlock(&a->p->mu);
}

void egr_detach(egr_attach *a)
{
	egr_proxy *p;
	int free_it;
	int64_t until = util_mono_ms() + DETACH_WAIT_MS;

	if (!a)
		return;
	p = a->p;
	met_add(g_met_workers, -1);
	pthread_mutex_lock(&p->mu);
	a->detaching = 1;
	a->on = 0;
	for (conn *c = a->list; c; c = c->next) {
		c->cut = 1;
		shutdown(c->cfd, SHUT_RDWR);
		if (c->ufd >= 0)
			shutdown(c->ufd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&p->mu);
	wake(p);
	pthread_mutex_lock(&p->mu);
	while (a->lfd >= 0 || a->conns > 0) {
		struct timespec ts;
		int64_t left = until - util_mono_ms();
		if (left <= 0 && a->lfd < 0)
			break;
		if (left <= 0)
			left = 50; /* the listener must go before we return */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_lock(&a->cbmu);
	a->gate_closed = 1;
	pthread_mutex_unlock(&a->cbmu);
	pthread_mutex_lock(&p->mu);
	attach_unref_locked(a, &free_it);
	pthread_mutex_unlock(&p->mu);
	if (free_it)
		attach_destroy(a);
}
