/*
 * egress — the allowlisting egress proxy through which workers reach
 * package registries, and nothing else.
 *
 * A sandbox has no network interface but loopback. A worker whose project's
 * policy allows some hosts gets a unix socket of this proxy bound into its
 * sandbox, and a forwarder inside (spawner/sbx_ns.c) listening on
 * 127.0.0.1:SBX_EGRESS_PORT passes every TCP connection to that socket, so
 * tools that honour HTTP_PROXY/HTTPS_PROXY work as they are. One proxy runs
 * per spawner process; each worker is an attachment with its own socket
 * (the socket says who is asking), its own policy, limits and decision log.
 *
 * What the proxy does with a connection:
 *   - reads one request head (at most 16 KiB, within 10 s): `CONNECT
 *     host:port` (a tunnel, for TLS) or a plain HTTP request in absolute
 *     form (`GET http://host[:port]/path`), forwarded with `Host` set from
 *     the target and `Connection: close`;
 *   - refuses malformed requests and host names before anything else: NUL
 *     and other control bytes, a CR or LF that does not end a line, spaces
 *     in the target, `@` (user information), a trailing dot, empty labels,
 *     characters outside letters, digits and `-`, numeric host forms other
 *     than a canonical dotted quad (2130706433, 0177.0.0.1, 0x7f.1, 127.1),
 *     IPv6 zone ids, ports outside 1..65535 or not plain digits;
 *   - checks the host and port against the attachment's policy (below) and
 *     the phase (a worker turns the network off for its phases without it);
 *   - resolves the name itself (getaddrinfo) and refuses when an address is
 *     loopback, private, link-local (cloud metadata at 169.254.169.254),
 *     carrier-grade NAT (100.64/10, another cloud's metadata), 0.0.0.0/8,
 *     multicast or reserved (240/4; IPv6 outside 2000::/3), unless the
 *     policy names that address (an address or CIDR pattern); IPv4
 *     mapped, compatible, NAT64 and 6to4 IPv6 forms are judged by the IPv4
 *     address they carry. It connects to the address it checked, so a
 *     second resolution (DNS rebinding) cannot change where it goes;
 *   - limits concurrent connections and total bytes (both directions) per
 *     attachment, and connections across the proxy;
 *   - reports each connection's decision once, when it ends: allowed or
 *     denied, method, host, port, the address, bytes each way, the reason.
 *
 * Policy patterns (egr_policy_add):
 *   registry.npmjs.org        that host exactly (letters are compared
 *                             without case), ports 80 and 443
 *   *.pythonhosted.org        any name ending in .pythonhosted.org (not
 *                             the bare domain), ports 80 and 443
 *   host:8080, *.x.org:*      one port, or any port
 *   10.1.2.3, [fd00::1]:443   an address: connections to it are allowed
 *   10.0.0.0/8:8081           addresses of a CIDR block
 * A name pattern never allows a non-public address: a private registry is
 * reached by listing its name and its address (or block).
 *
 * Not protected: the proxy does not look inside TLS, so an allowed host can
 * serve anything (a registry serves any package), and a tunnel to an
 * allowed host on a shared front (a CDN) may reach another site of that
 * front by its TLS name (domain fronting).
 *
 * Thread-safety: every function may be called from any thread. Decision
 * callbacks run on the proxy's connection threads.
 */
#ifndef ORCH_SPAWNER_EGRESS_H
#define ORCH_SPAWNER_EGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct egr_policy egr_policy;
typedef struct egr_proxy egr_proxy;
typedef struct egr_attach egr_attach;

/* ---- policies ---- */

/* An empty policy (allows nothing). The caller owns *out (egr_policy_free). */
int egr_policy_new(egr_policy **out);
void egr_policy_free(egr_policy *p);

/* Adds one pattern (the forms above). ERR_INVALID with a message naming the
 * pattern and what is wrong with it; the policy is unchanged then. */
int egr_policy_add(egr_policy *p, const char *pattern);

/* Adds every pattern of a list separated by spaces, commas or newlines. */
int egr_policy_add_list(egr_policy *p, const char *list);

/* Number of patterns. */
size_t egr_policy_count(const egr_policy *p);

/* A copy (owned by the caller), NULL when out of memory. */
egr_policy *egr_policy_dup(const egr_policy *p);

/* The patterns as one line ("a.org, *.b.org:443"), into out[cap]. */
void egr_policy_describe(const egr_policy *p, char *out, size_t cap);

/* ---- the checks, for tests and for the command line ---- */

/* Checks a host as it appears in a request target (a name, a dotted quad
 * or a bracketed IPv6 literal, without port) and writes its normalised
 * form (lower case; IPv6 without brackets) into norm[cap]. ERR_INVALID
 * with the reason. */
int egr_host_check(const char *host, size_t len, char *norm, size_t cap);

/* NULL when `sa` is a public unicast address; else the name of its class
 * ("loopback", "private", "link-local", ...). */
const char *egr_addr_class(const struct sockaddr *sa);

/* ---- the proxy ---- */

typedef struct egr_config {
	const char *dir;           /* folder for the sockets (its parent must exist; removed
				      with what is in it by egr_free when egr_new made it);
				      NULL: /run/orch-egress/<pid>-<n> */
	int max_conns;             /* concurrent connections per attachment (32) */
	int64_t max_bytes;         /* bytes per attachment, both directions (2 GiB) */
	int max_total;             /* concurrent connections of the proxy (256) */
	int64_t connect_timeout_ms; /* resolving and connecting upstream (10 s) */
	int64_t idle_timeout_ms;   /* a connection with no byte either way (5 min) */
} egr_config;

/* One connection's outcome, passed to the attachment's callback. Every
 * string is borrowed for the call. */
typedef struct egr_decision {
	const char *name;       /* the attachment's name */
	int allowed;            /* the policy let it through (bytes may still be 0) */
	int status;             /* the HTTP status given to the client (200 for a tunnel) */
	const char *method;     /* "CONNECT", "GET", ...; "" when unreadable */
	const char *host;       /* the requested host, normalised when it was valid,
				   else printable with \xNN escapes */
	int port;               /* 0 when unknown */
	const char *addr;       /* the address connected to; "" when none */
	const char *reason;     /* why it was denied or how it ended; "" */
	const char *phase;      /* the attachment's phase at the time */
	uint64_t bytes_up;      /* client to server */
	uint64_t bytes_down;    /* server to client */
	int64_t ms;             /* from accept to close */
} egr_decision;

typedef void (*egr_decision_fn)(void *udata, const egr_decision *d);

/* Starts a proxy (its accept thread) with sockets under cfg->dir (created
 * 0711 if missing; what dead processes left under /run/orch-egress is
 * removed). ERR_IO when the folder or a thread cannot be made. The caller
 * owns *out (egr_free). */
int egr_new(egr_proxy **out, const egr_config *cfg);

/* Detaches every attachment (see egr_detach), stops the accept thread and
 * waits for every connection thread. NULL is a no-op. */
void egr_free(egr_proxy *p);

/* Creates an attachment named `name` (printable, for the decisions) with a
 * copy of `pol`, listening on a fresh unix socket (mode 0666) whose path
 * egr_attach_socket() gives. The network starts OFF: egr_attach_phase turns
 * it on. `fn` (may be NULL) gets each decision with `udata` until
 * egr_detach returns. The caller owns *out (egr_detach). */
int egr_attach_new(egr_proxy *p, egr_attach **out, const char *name, const egr_policy *pol,
		   egr_decision_fn fn, void *udata);

/* The host path of the attachment's socket. Borrowed. */
const char *egr_attach_socket(const egr_attach *a);

/* Names the phase ("setup", "agent", ...; copied) for the decisions and
 * says whether it has network: with `on` 0 every request is refused, with
 * a reason naming the phase. */
void egr_attach_phase(egr_attach *a, const char *phase, int on);

/* Totals so far. */
typedef struct egr_stats {
	uint64_t allowed, denied;  /* connections */
	uint64_t bytes;            /* both directions */
} egr_stats;
void egr_attach_stats(egr_attach *a, egr_stats *out);

/* Closes the socket, cuts the attachment's connections (each still reports
 * its decision), waits up to 2 s for them, and frees the attachment: no
 * callback runs after it returns. NULL is a no-op. */
void egr_detach(egr_attach *a);

#endif
