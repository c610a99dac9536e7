/* Prints what the fake model needs to carry the small strkit project of the
 * factory tests (tests/support/factory_support.h) from a terminal idea to
 * merged code, for `make compose-test`, which runs it against the compose
 * stack:
 *
 *   factory_script BASE_URL [--ask]
 *     {"models": the models file (one model per role, on BASE_URL),
 *      "script": [the replies for the fake's POST /__script, in order]}
 *
 * With --ask the brainstorm first asks a question (the person's answer,
 * whatever it is, then gets the spec).
 *
 * The brainstorm answers the idea with the spec at once; slug is written
 * whole at once (TF_SLUG_FULL: the command line's tests need its
 * punctuation handling); every task passes its review in the first round. */
#include "tests/support/factory_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	json_t *out, *script, *models;
	const char *const tasks[] = {"wc", "cli"};
	char *s;

	if (argc != 2 && !(argc == 3 && strcmp(argv[2], "--ask") == 0)) {
		fprintf(stderr, "usage: factory_script BASE_URL [--ask]\n");
		return 2;
	}
	script = json_array();
	if (argc == 3)
		json_array_append_new(script, tf_brainstorm_question());
	json_array_append_new(script, tf_brainstorm_spec());
	json_array_append_new(script, tf_plan());
	{
		json_t *a = tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL);
		json_array_extend(script, a);
		json_decref(a);
	}
	for (size_t i = 0; i < 2; i++) {
		json_t *a = tf_agent(tasks[i]);
		json_array_extend(script, a);
		json_decref(a);
	}
	json_array_append_new(script, tf_review("slug", 1, 1));
	for (size_t i = 0; i < 2; i++)
		json_array_append_new(script, tf_review(tasks[i], 1, 1));
	models = json_pack(
		"{s:{s:{s:s, s:i, s:i, s:s}}, s:{s:o, s:o, s:o, s:o},"
		" s:{s:s, s:s, s:s, s:s, s:s}}",
		"endpoints", "fake", "base_url", argv[1], "slots", 8, "max_retries", 2, "timeout",
		"120s", "models", "brain",
		json_pack("{s:s, s:s, s:i, s:i, s:f, s:f}", "endpoint", "fake", "model",
			  "m-brainstorm", "context", 200000, "max_output", 4096, "price_in", 1.0,
			  "price_out", 2.0),
		"arch",
		json_pack("{s:s, s:s, s:i, s:i, s:f, s:f}", "endpoint", "fake", "model",
			  "m-architect", "context", 200000, "max_output", 4096, "price_in", 1.0,
			  "price_out", 2.0),
		"dev",
		json_pack("{s:s, s:s, s:i, s:i, s:f, s:f}", "endpoint", "fake", "model",
			  "m-developer", "context", 200000, "max_output", 4096, "price_in", 1.0,
			  "price_out", 2.0),
		"rev",
		json_pack("{s:s, s:s, s:i, s:i, s:f, s:f}", "endpoint", "fake", "model",
			  "m-reviewer", "context", 200000, "max_output", 4096, "price_in", 1.0,
			  "price_out", 2.0),
		"roles", "brainstorm", "brain", "architect", "arch", "developer", "dev", "reviewer",
		"rev", "default", "dev");
	out = json_pack("{s:o, s:o}", "models", models, "script", script);
	s = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	if (!s) {
		fprintf(stderr, "factory_script: out of memory\n");
		return 1;
	}
	puts(s);
	free(s);
	return 0;
}
