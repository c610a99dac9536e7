/* The JSON-schema checker (llm/schema.c) that decides whether a model's
 * structured reply is accepted.
 *
 * Input: a mode byte, then JSON. Mode 0-3: the JSON is a model's reply,
 * checked against the factory's own schemas (spec, plan, review,
 * brainstorm). Other modes: the JSON is [schema, value], both arbitrary.
 *
 * Properties: the answer is "matches" or ERR_INVALID with a message that
 * names the place ("$..."), is valid UTF-8 (it is sent back to the model)
 * and is the same when asked twice; any value matches {}, true, its own
 * "const" and an "enum" holding it; a schema that refers to itself is
 * answered, not followed for ever. */
#include "tests/fuzz/fuzz.h"

#include "core/err.h"
#include "llm/schema.h"
#include "nodes/spec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

static void check(const json_t *schema, const json_t *v)
{
	char a[600], b[600];
	int ra = llm_schema_check(schema, v, a, sizeof(a));
	int rb;

	FZ_CHECK(ra == 0 || ra == ERR_INVALID, "rc %d", ra);
	if (ra == 0)
		return;
	FZ_CHECK(a[0] == '$', "the message names no place: %s", a);
	FZ_CHECK(fz_utf8_valid(a, strlen(a)), "the message is not UTF-8: %s", a);
	FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())), "err_last is not UTF-8: %s",
		 err_last());
	rb = llm_schema_check(schema, v, b, sizeof(b));
	FZ_CHECK(rb == ra && strcmp(a, b) == 0, "asked twice: '%s', then '%s'", a, b);
}

static void always_matches(const json_t *v)
{
	json_t *s;
	char why[600];

	s = json_object();
	FZ_CHECK(llm_schema_check(s, v, why, sizeof(why)) == 0, "{} refused: %s", why);
	json_decref(s);
	FZ_CHECK(llm_schema_check(json_true(), v, why, sizeof(why)) == 0, "true refused: %s", why);
	s = json_pack("{s:O}", "const", v);
	FZ_CHECK(llm_schema_check(s, v, why, sizeof(why)) == 0, "its const refused: %s", why);
	json_decref(s);
	s = json_pack("{s:[iO]}", "enum", 7, v);
	FZ_CHECK(llm_schema_check(s, v, why, sizeof(why)) == 0, "its enum refused: %s", why);
	json_decref(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"spec", "plan", "review", "brainstorm"};
	json_t *j;

	if (size < 1)
		return 0;
	j = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
	if (!j)
		return 0;
	if (data[0] < 4) {
		const json_t *schema = nd_schema(names[data[0]]);
		FZ_CHECK(schema != NULL, "schema %s: %s", names[data[0]], err_last());
		check(schema, j);
		always_matches(j);
	} else if (json_is_array(j) && json_array_size(j) == 2) {
		check(json_array_get(j, 0), json_array_get(j, 1));
	}
	json_decref(j);
	return 0;
}
