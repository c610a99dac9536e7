/*
 * stream — what runs emit while they execute, delivered live to whoever
 * subscribes: LangGraph's stream modes, for the chat, the bot, the CLI, the
 * web pages and any other thread or process.
 *
 * An event has a mode, the thread, run, step, node and subgraph path it
 * comes from, and a JSON payload:
 *
 *   values       the whole state after each committed step (opt-in: only
 *                built while a subscriber asks for it)
 *   updates      each task's update, once its step committed
 *   custom       anything a node emits (eng_stream_custom, engine/ctx.h)
 *   messages     a model's tokens as they are generated (nodes' model
 *                calls): {"call", "phase": "start", "model", "attempt",
 *                "display"}, then {"call", "text"} chunks, then {"call",
 *                "phase": "end", "finish"}; a second "start" of one call
 *                (a retry, the next model) means: forget its text so far
 *   checkpoints  each checkpoint as it commits: {"seq", "parent", "step",
 *                "nodes", "next", "status"}; the first event a late
 *                subscriber gets is the thread's latest one with
 *                {"snapshot": true, "state": ...}
 *   tasks        each task's start and end ({"event": "start"|"end",
 *                "task", "attempt", "outcome", "error"})
 *   debug        retries, timeouts and commits the database refused
 *   run          a run starting ({"event": "start", "resumed", "takeover"}:
 *                a run taken over after its engine died says so here),
 *                ending ({"event": "end", "status", "error", "waiting"});
 *                always delivered
 *   dropped      a gap ({"count": n}): this many events were dropped for
 *                this subscriber because it did not keep up; always
 *                delivered, in place of what was lost
 *
 * Streams are ephemeral: never checkpointed, never in a step's transaction.
 * Emitting never blocks the emitter: each subscriber has a bounded queue,
 * and a subscriber that falls behind loses events (told by a "dropped"
 * event) rather than slowing a node. Nothing is built while nobody wants a
 * mode (one atomic load per emission point).
 *
 * A hub delivers the events of its process to its subscriptions. The
 * engine emits through an eng_stream_sink (eng_options.sink); a hub is one
 * (eng_stream_hub_sink). Between processes, every event has a wire form
 * (one JSON object on one line, wire below), which a transport carries
 * (the application wires Redis pub/sub, see core/pubsub.h): a forwarding
 * subscription (local_only) hands this hub's events to it, and the other
 * side feeds what arrives to its own hub with eng_stream_inject. Events a
 * hub emitted itself come back marked with its origin and are ignored.
 *
 * Subscribing from another thread: eng_stream_subscribe, then either
 * eng_stream_next (blocking with a timeout) or poll()/epoll/libevent on
 * eng_stream_sub_fd (readable while events are queued) and
 * eng_stream_try_next until it returns 0. Every function is thread-safe;
 * one subscription is read by one thread at a time.
 *
 * The wire form: {"v":1,"mode":"custom","thread":12,"key":"tg:42:1",
 * "run":34,"seq":17,"step":3,"ck":0,"node":"talker","ns":"",
 * "t":1765432100123.456,"origin":"host-123-ab12","data":{...}} with the
 * fields in that order
 * (eng_stream_inject relies on it) and "data" last; "t" is the wall clock
 * in milliseconds when it was emitted.
 */
#ifndef ORCH_ENGINE_STREAM_H
#define ORCH_ENGINE_STREAM_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/pg.h"

enum eng_stream_mode {
	ENG_STREAM_VALUES = 1 << 0,
	ENG_STREAM_UPDATES = 1 << 1,
	ENG_STREAM_CUSTOM = 1 << 2,
	ENG_STREAM_MESSAGES = 1 << 3,
	ENG_STREAM_CHECKPOINTS = 1 << 4,
	ENG_STREAM_TASKS = 1 << 5,
	ENG_STREAM_DEBUG = 1 << 6,
	ENG_STREAM_RUN = 1 << 7,
	ENG_STREAM_DROPPED = 1 << 8,
};

/* Delivered to every subscription whatever it asked for. */
#define ENG_STREAM_ALWAYS (ENG_STREAM_RUN | ENG_STREAM_DROPPED)
/* What a subscription gets when it names no mode: updates, custom, messages
 * and checkpoints (values, tasks and debug are asked for by name: they cost
 * the most events per step). */
#define ENG_STREAM_DEFAULT                                                                      \
	(ENG_STREAM_UPDATES | ENG_STREAM_CUSTOM | ENG_STREAM_MESSAGES | ENG_STREAM_CHECKPOINTS |   \
	 ENG_STREAM_ALWAYS)
#define ENG_STREAM_ALL 0x1ffu

/* "values", "updates", ... for one mode bit; "" for none. */
const char *eng_stream_mode_name(unsigned mode);

/* Parses "updates,custom" (or "all", "default"; commas or spaces) into a
 * mask. ERR_INVALID naming an unknown mode and listing the known ones. */
int eng_stream_modes_parse(const char *list, unsigned *out);

/* An event: immutable once made, shared by reference between the
 * subscriptions it is delivered to. The strings are never NULL. */
typedef struct eng_stream_event {
	unsigned mode;
	int64_t thread_id, run_id, seq;
	int step;
	int checkpoint;       /* updates, checkpoints, values: the checkpoint they are of */
	double t_ms;          /* wall clock, milliseconds, when it was emitted */
	int64_t dropped;      /* mode dropped: how many events were lost */
	const char *thread_key;
	const char *node;
	const char *ns;       /* subgraph path "outer:0/inner:1"; "" at the top */
	const char *origin;   /* the hub that emitted it */
	const char *data;     /* the payload as JSON text */
	size_t data_len;
	const char *wire;     /* the whole event in its wire form */
	size_t wire_len;
	atomic_int refs;      /* private */
	int own_gap;          /* private */
} eng_stream_event;

void eng_stream_event_retain(eng_stream_event *ev);
/* Drops a reference; the last frees the event. NULL is a no-op. */
void eng_stream_event_release(eng_stream_event *ev);

/* The payload parsed (owned by the caller), or NULL when it does not parse. */
json_t *eng_stream_event_data(const eng_stream_event *ev);

/* Where an event comes from. Strings are borrowed for the call. */
typedef struct eng_stream_meta {
	unsigned mode;          /* one mode bit */
	int64_t thread_id, run_id, seq;
	int step;
	int checkpoint;         /* updates, checkpoints, values: their checkpoint; 0: none */
	const char *thread_key; /* NULL: "" */
	const char *node;
	const char *ns;
} eng_stream_meta;

/* The sink the engine emits through (eng_options.sink). `wanted` returns the
 * modes anyone wants now (cheap: called before an event is built); `emit`
 * must not block. A hub provides one (eng_stream_hub_sink); an application
 * may install its own. */
typedef struct eng_stream_sink {
	unsigned (*wanted)(void *udata);
	void (*emit)(void *udata, const eng_stream_meta *m, const char *data, size_t len);
	void *udata;
} eng_stream_sink;

/* Emits through `sink` (NULL: nothing) when its mode is wanted: `data` is
 * serialised here (borrowed; NULL: {}). Returns 1 when emitted, 0 when
 * nobody wanted it. */
int eng_stream_sink_emit(const eng_stream_sink *sink, const eng_stream_meta *m,
			 const json_t *data);

/* True when `sink` is set and someone wants one of `modes` now. */
int eng_stream_sink_wants(const eng_stream_sink *sink, unsigned modes);

/* --- the hub --- */

typedef struct eng_stream_hub eng_stream_hub;
typedef struct eng_stream_sub eng_stream_sub;

typedef struct eng_stream_options {
	int queue;            /* events a subscription holds before dropping; 0: 4096 */
	pg_pool *pool;        /* for late joins (the last checkpoint); may be NULL */
	const char *origin;   /* this hub's name on the wire; NULL: "<host>-<pid>-<random>" */
} eng_stream_options;

/* Creates a hub (opt may be NULL). The caller owns *out. */
int eng_stream_hub_new(eng_stream_hub **out, const eng_stream_options *opt);

/* Closes every subscription still open (their readers get ERR_CANCELLED)
 * and frees the hub once the last is unsubscribed. NULL is a no-op. */
void eng_stream_hub_free(eng_stream_hub *h);

/* The hub as the engine's sink (borrowed; valid while the hub lives). */
const eng_stream_sink *eng_stream_hub_sink(eng_stream_hub *h);

const char *eng_stream_hub_origin(const eng_stream_hub *h);

/* Emits an event from this process (what the sink does). `data` is the
 * payload's JSON text (borrowed; NULL or empty: {}). */
int eng_stream_publish(eng_stream_hub *h, const eng_stream_meta *m, const char *data,
		       size_t len);

/* Delivers an event that arrived from another process in its wire form.
 * An event of this hub's own origin is ignored (0). ERR_PARSE for text
 * that is not a wire event. A transport that lost events (a broken
 * connection) tells the hub with eng_stream_inject_gap. */
int eng_stream_inject(eng_stream_hub *h, const char *wire, size_t len);

/* Tells every subscription that `count` events (0: an unknown number) may
 * have been lost in transport. */
void eng_stream_inject_gap(eng_stream_hub *h, int64_t count);

/* A tap sees every event published in this process (not those injected)
 * whose mode is among `modes`, synchronously, as it is delivered: the way
 * to hand them to a transport (bot/live.h). It must not block. `modes`
 * count as wanted (values only when named). One tap per hub; fn NULL
 * removes it. */
typedef void (*eng_stream_tap_fn)(void *udata, const eng_stream_event *ev);
void eng_stream_hub_tap(eng_stream_hub *h, unsigned modes, eng_stream_tap_fn fn, void *udata);

/* The wire form of a gap of `count` events (0: unknown) as this hub would
 * emit it, appended to out: what a transport sends after losing events. */
int eng_stream_gap_wire(const eng_stream_hub *h, int64_t count, buf *out);

/* Events this thread publishes between eng_stream_batch_begin and
 * eng_stream_batch_end wake their readers once, at the end, rather than
 * one by one (what the engine does with a step's updates and checkpoint).
 * Nests; keep a batch to a few events in a row (no waiting inside). A hub
 * must not be freed inside a batch of a thread that published into it. */
void eng_stream_batch_begin(void);
void eng_stream_batch_end(void);

/* Modes some subscription of the hub wants now. */
unsigned eng_stream_hub_wanted(const eng_stream_hub *h);

/* Figures: events published here, injected, delivered to subscriptions,
 * dropped for slow ones. */
typedef struct eng_stream_stats {
	int64_t published, injected, delivered, dropped;
	int subscriptions;
} eng_stream_stats;
void eng_stream_hub_stats(const eng_stream_hub *h, eng_stream_stats *out);

/* What a subscription wants. */
typedef struct eng_stream_filter {
	unsigned modes;         /* 0: ENG_STREAM_DEFAULT; run and dropped always */
	int64_t thread_id;      /* 0: every thread */
	int64_t run_id;         /* 0: every run */
	const char *key_prefix; /* only threads whose key starts so; NULL: any (copied) */
	int local_only;         /* only events published in this process (a forwarder) */
	int late_join;          /* with thread_id or run_id and the hub's pool: the
				 * thread's latest checkpoint (checkpoints, snapshot)
				 * comes first, and for a run that has ended already
				 * its end (run); the updates, checkpoints and values
				 * of that checkpoint and earlier ones are not given
				 * again after it */
	int queue;              /* 0: the hub's */
} eng_stream_filter;

/* Subscribes. Events emitted from now on that match are queued for it.
 * With late_join the snapshot is read before this returns (ERR_DB when it
 * cannot be; ERR_NOTFOUND for a run that does not exist). The caller owns
 * *out (eng_stream_unsubscribe). */
int eng_stream_subscribe(eng_stream_hub *h, const eng_stream_filter *f, eng_stream_sub **out);

/* Ends a subscription and frees what it still holds. NULL is a no-op. */
void eng_stream_unsubscribe(eng_stream_sub *s);

/* A descriptor that is readable while events are queued (an eventfd): for
 * poll() or an event loop. Borrowed; closed by eng_stream_unsubscribe. */
int eng_stream_sub_fd(const eng_stream_sub *s);

/* The next event (owned: eng_stream_event_release), waiting up to
 * timeout_ms (< 0: for ever). ERR_TIMEOUT when none came, ERR_CANCELLED
 * when the hub was freed. */
int eng_stream_next(eng_stream_sub *s, int64_t timeout_ms, eng_stream_event **out);

/* The next event without waiting: 1 and *out (owned), or 0 when none. */
int eng_stream_try_next(eng_stream_sub *s, eng_stream_event **out);

/* Events dropped for this subscription so far. */
int64_t eng_stream_sub_dropped(const eng_stream_sub *s);

#endif
