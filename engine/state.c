#include "engine/state.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

struct eng_schema {
	json_t *reducers; /* key -> integer reducer */
};

int eng_schema_new(eng_schema **out)
{
	eng_schema *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	s->reducers = json_object();
	if (!s->reducers) {
		free(s);
		return err_set(ERR_NOMEM, "out of memory");
	}
	*out = s;
	return 0;
}

void eng_schema_free(eng_schema *s)
{
	if (!s)
		return;
	json_decref(s->reducers);
	free(s);
}

int eng_schema_set(eng_schema *s, const char *key, eng_reducer r)
{
	if (r != ENG_REPLACE && r != ENG_APPEND && r != ENG_MERGE)
		return err_set(ERR_INVALID, "unknown reducer %d for key '%s'", (int)r, key);
	if (json_object_set_new(s->reducers, key, json_integer(r)) < 0)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

eng_reducer eng_schema_get(const eng_schema *s, const char *key)
{
	json_t *v = s ? json_object_get(s->reducers, key) : NULL;
	return v ? (eng_reducer)json_integer_value(v) : ENG_REPLACE;
}

int eng_update_check(const eng_schema *s, const json_t *update)
{
	const char *key;
	json_t *val;

	if (!update || json_is_null(update))
		return 0;
	if (!json_is_object(update))
		return err_set(ERR_INVALID,
			       "a node returned a state update that is a JSON %s, not an object",
			       json_is_array(update)    ? "array"
			       : json_is_string(update) ? "string"
			       : json_is_number(update) ? "number"
							: "value");
	json_object_foreach((json_t *)update, key, val) {
		if (eng_schema_get(s, key) == ENG_MERGE && !json_is_object(val) &&
		    !json_is_null(val))
			return err_set(ERR_INVALID,
				       "state key '%s' merges objects, but the update gave it a non-object",
				       key);
	}
	return 0;
}

/* Appends `val` (its items when an array) to the array `into`. */
static int append_items(json_t *into, json_t *val)
{
	int rc = json_is_array(val) ? json_array_extend(into, val) : json_array_append(into, val);
	return rc < 0 ? err_set(ERR_NOMEM, "out of memory") : 0;
}

/* Returns obj[key] as an array, creating it (or replacing a non-array). */
static json_t *array_at(json_t *obj, const char *key)
{
	json_t *a = json_object_get(obj, key);

	if (json_is_array(a))
		return a;
	a = json_array();
	if (!a || json_object_set_new(obj, key, a) < 0)
		return NULL;
	return a;
}

static json_t *object_at(json_t *obj, const char *key)
{
	json_t *o = json_object_get(obj, key);

	if (json_is_object(o))
		return o;
	o = json_object();
	if (!o || json_object_set_new(obj, key, o) < 0)
		return NULL;
	return o;
}

/* Shallow merge where a null value deletes the key. */
static int merge_into(json_t *dst, json_t *src)
{
	const char *k;
	json_t *v;

	json_object_foreach(src, k, v) {
		if (json_is_null(v))
			json_object_del(dst, k);
		else if (json_object_set(dst, k, v) < 0)
			return err_set(ERR_NOMEM, "out of memory");
	}
	return 0;
}

int eng_state_apply(const eng_schema *s, json_t *state, json_t *delta, const json_t *update)
{
	const char *key;
	json_t *val;
	int rc;

	if (!update || json_is_null(update))
		return 0;
	json_object_foreach((json_t *)update, key, val) {
		json_t *op = object_at(delta, key);
		json_t *target;

		if (!op)
			return err_set(ERR_NOMEM, "out of memory");
		switch (eng_schema_get(s, key)) {
		case ENG_APPEND:
			target = array_at(state, key);
			if (!target)
				return err_set(ERR_NOMEM, "out of memory");
			rc = append_items(target, val);
			if (rc == 0) {
				json_t *d = array_at(op, "append");
				rc = d ? append_items(d, val) : err_set(ERR_NOMEM, "out of memory");
			}
			break;
		case ENG_MERGE:
			if (json_is_null(val)) {
				/* null resets the whole object */
				rc = json_object_set(state, key, val);
				json_object_clear(op);
				if (rc == 0)
					rc = json_object_set(op, "set", val) < 0 ? ERR_NOMEM : 0;
				break;
			}
			target = object_at(state, key);
			if (!target)
				return err_set(ERR_NOMEM, "out of memory");
			rc = merge_into(target, val);
			if (rc == 0) {
				json_t *set = json_object_get(op, "set");
				json_t *d = set && json_is_null(set) ? NULL : object_at(op, "merge");
				if (set && json_is_null(set)) {
					/* reset then merge in the same step: store the result */
					json_object_clear(op);
					rc = json_object_set(op, "set", target) < 0 ? ERR_NOMEM : 0;
				} else {
					/* the delta keeps nulls: they delete on replay */
					rc = d && json_object_update(d, val) == 0
						     ? 0
						     : err_set(ERR_NOMEM, "out of memory");
				}
			}
			break;
		default:
			rc = json_object_set(state, key, val) < 0 ? ERR_NOMEM : 0;
			if (rc == 0) {
				json_object_clear(op);
				rc = json_object_set(op, "set", val) < 0 ? ERR_NOMEM : 0;
			}
		}
		if (rc < 0)
			return rc == ERR_NOMEM ? err_set(ERR_NOMEM, "out of memory") : rc;
	}
	return 0;
}

int eng_delta_apply(json_t *state, const json_t *delta)
{
	const char *key;
	json_t *op, *v;

	if (!json_is_object(delta))
		return err_set(ERR_PARSE, "stored delta is not an object");
	json_object_foreach((json_t *)delta, key, op) {
		int rc = 0;

		if (!json_is_object(op))
			return err_set(ERR_PARSE, "stored delta for key '%s' is not an object", key);
		v = json_object_get(op, "set");
		if (v)
			rc = json_object_set(state, key, v);
		v = json_object_get(op, "append");
		if (rc == 0 && v) {
			json_t *a = array_at(state, key);
			if (!a || !json_is_array(v))
				return err_set(ERR_PARSE, "stored append for key '%s' is not a list", key);
			rc = json_array_extend(a, v);
		}
		v = json_object_get(op, "merge");
		if (rc == 0 && v) {
			json_t *o = object_at(state, key);
			if (!o || !json_is_object(v))
				return err_set(ERR_PARSE, "stored merge for key '%s' is not an object", key);
			rc = merge_into(o, v);
		}
		if (rc < 0)
			return err_set(ERR_NOMEM, "out of memory");
	}
	return 0;
}
