/*
 * sched — the slot scheduler: at most `slots` requests in flight per
 * endpoint, handed out from one queue in a fair, prioritised order.
 *
 * Order: priority first (a person waiting in chat before a node's normal
 * work before background workers), then a fair tag per owner (round robin
 * across owners, usually graph threads: an owner with 100 queued requests
 * does not make a newcomer wait behind all of them), then arrival.
 *
 * Lookahead: when the request at the head waits for a busy endpoint, up to
 * `lookahead` requests are examined and the first whose endpoint has a free
 * slot goes, so one busy endpoint does not stall the others.
 *
 * Anti-starvation: a request is "passed over" each time a request that
 * arrived after it is granted a slot on its endpoint before it (a higher
 * priority, or a fairer tag). After `starvation` passes it goes next on its
 * endpoint: no later request gets a slot there before it. So no request is
 * ever passed over more than `starvation` times.
 *
 * Thread-safe; acquire blocks the calling thread (cancellable, with a
 * deadline). The figures (queue depth, in flight, waits) are what
 * `orchestrator status` shows, persisted by llm/llm.c.
 */
#ifndef ORCH_LLM_SCHED_H
#define ORCH_LLM_SCHED_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct llm_sched llm_sched;

/* Served in the order interactive, normal, background. NORMAL is 0 so a
 * zeroed llm_call never jumps the queue by accident. */
enum llm_priority {
	LLM_PRIO_NORMAL = 0,      /* graph nodes */
	LLM_PRIO_INTERACTIVE = 1, /* a person is waiting for this reply */
	LLM_PRIO_BACKGROUND = 2,  /* workers, summaries, evals */
};

/* A granted slot. Keep it until llm_sched_release. */
typedef struct llm_ticket {
	int endpoint;
	uint64_t enq_seq;   /* arrival order (1, 2, ...) */
	uint64_t grant_seq; /* grant order (1, 2, ...) */
	int passed;         /* times passed over while it waited */
	double wait_ms;     /* time in the queue */
} llm_ticket;

typedef struct llm_sched_stats {
	char name[64];
	int slots;
	int in_flight;
	int max_in_flight;    /* the most ever in flight at once */
	int queued;
	int64_t granted;
	double wait_total_ms;
	double wait_max_ms;
	double oldest_wait_ms; /* of the requests queued now */
	int max_passed;        /* the most a granted request was passed over */
} llm_sched_stats;

/* Creates a scheduler for n endpoints with their names and slot counts
 * (copied). lookahead >= 1, starvation >= 1. The caller owns *out. */
int llm_sched_new(llm_sched **out, int n, const char *const *names, const int *slots,
		  int lookahead, int starvation);

/* Adds an endpoint (a configuration that changed at run time) with its
 * name and slots; its index into *out_index. Thread-safe. */
int llm_sched_add(llm_sched *s, const char *name, int slots, int *out_index);

/* Frees the scheduler. No thread may be waiting in it. NULL is a no-op. */
void llm_sched_free(llm_sched *s);

/* Waits for a slot on `endpoint`. `owner` (may be NULL) is the fairness
 * key. Returns 0 with *out filled, ERR_CANCELLED when *cancel became
 * non-zero, ERR_TIMEOUT after timeout_ms (< 0: no limit); on error the
 * request leaves the queue and holds nothing. */
int llm_sched_acquire(llm_sched *s, int endpoint, int priority, const char *owner,
		      const atomic_int *cancel, int64_t timeout_ms, llm_ticket *out);

/* Gives the slot back and hands it to the next request in order. */
void llm_sched_release(llm_sched *s, const llm_ticket *t);

/* Sets the slots of `endpoint` (what its server reports it serves at
 * once); waiting requests are granted the slots that became free. A count
 * below 1 is taken as 1; an unknown endpoint is ignored. */
void llm_sched_set_slots(llm_sched *s, int endpoint, int slots);

/* Fills out[0..n-1] (n = the number of endpoints, at most cap) with the
 * current figures; returns n. */
int llm_sched_stats_get(llm_sched *s, llm_sched_stats *out, int cap);

#endif
