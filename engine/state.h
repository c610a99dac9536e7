/*
 * state — a graph's state as a JSON object, per-key reducers, and deltas.
 *
 * A node returns an update: an object whose keys are merged into the state
 * by each key's reducer. REPLACE (the default) sets the value; APPEND
 * extends a list (an array value appends its items, any other value appends
 * itself); MERGE updates an object shallowly (the update's keys replace the
 * state's, a key whose value is null is deleted; an update of null itself
 * resets the whole object to null).
 *
 * What a super-step wrote is recorded as a delta that describes itself, so a
 * stored state can be rebuilt without the graph that wrote it:
 *
 *   {"topic": {"set": "bot"}, "log": {"append": ["a", "b"]}, "meta": {"merge": {"k": 1}}}
 *
 * The functions mutate their arguments in place and are not thread-safe for
 * one object; different objects may be used from different threads.
 */
#ifndef ORCH_ENGINE_STATE_H
#define ORCH_ENGINE_STATE_H

#include <jansson.h>

typedef enum eng_reducer {
	ENG_REPLACE = 0,
	ENG_APPEND = 1,
	ENG_MERGE = 2,
} eng_reducer;

/* The reducers of a graph's keys. Keys not named use ENG_REPLACE. */
typedef struct eng_schema eng_schema;

int eng_schema_new(eng_schema **out);
void eng_schema_free(eng_schema *s);
int eng_schema_set(eng_schema *s, const char *key, eng_reducer r);
eng_reducer eng_schema_get(const eng_schema *s, const char *key);

/* Checks that `update` is an object (or NULL, meaning no change) whose MERGE
 * keys hold objects. ERR_INVALID naming the key and what it needed. */
int eng_update_check(const eng_schema *s, const json_t *update);

/* Applies `update` to `state` by the schema's reducers and records the same
 * change in `delta` (both objects, changed in place). The update is borrowed;
 * its values are shared by reference. Call eng_update_check first. */
int eng_state_apply(const eng_schema *s, json_t *state, json_t *delta, const json_t *update);

/* Applies a stored delta to `state` in place. ERR_PARSE when the delta is
 * not of the form above. */
int eng_delta_apply(json_t *state, const json_t *delta);

#endif
