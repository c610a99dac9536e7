#include "eval/person.h"

#include <stdio.h>
#include <string.h>

int ev_person_reply(ev_person *p, const ev_task *t, buf *out)
{
	if (p->answers >= EV_PERSON_MAX_ANSWERS)
		return 1;
	p->answers++;
	p->interventions++;
	if (p->answers == 1 && t->nanswers > 0) {
		buf_puts(out, "Here is what I know:");
		for (size_t i = 0; i < t->nanswers; i++)
			buf_printf(out, "\n- %s", t->answers[i]);
		return 0;
	}
	buf_puts(out, "I have nothing to add: choose sensible defaults for whatever is still open "
		      "and propose the spec.");
	return 0;
}

static int find(const json_t *options, const char *id)
{
	size_t i;
	const json_t *o;

	json_array_foreach(options, i, o) {
		const char *v = json_string_value(json_object_get(o, "id"));
		if (v && strcmp(v, id) == 0)
			return (int)i;
	}
	return -1;
}

/* The stop (or cancel, reject, skip) option, else the last one. */
static int stop_option(ev_person *p, const json_t *options)
{
	static const char *const no[] = {"stop", "cancel", "reject", "skip", NULL};

	p->stopped = 1;
	for (int k = 0; no[k]; k++)
		if (find(options, no[k]) >= 0)
			return find(options, no[k]);
	return (int)json_array_size(options) - 1;
}

int ev_person_choose(ev_person *p, const char *key, const json_t *options, int *out)
{
	char kind[32] = "", task[64] = "";
	int i = -1;

	*out = -1;
	if (json_array_size(options) == 0)
		return 0;
	p->interventions++;
	if (strncmp(key, "spec:", 5) == 0 || strncmp(key, "plan:", 5) == 0) {
		i = find(options, "approve");
	} else if (strncmp(key, "q:", 2) == 0) {
		/* q:<n>:<kind>:<task> */
		const char *a = strchr(key + 2, ':');
		const char *b = a ? strchr(a + 1, ':') : NULL;
		if (a && b) {
			snprintf(kind, sizeof(kind), "%.*s", (int)(b - a - 1), a + 1);
			snprintf(task, sizeof(task), "%s", b + 1);
		}
		if (strcmp(kind, "merge") == 0) {
			i = find(options, "merge");
		} else if (strcmp(kind, "failed") == 0 || strcmp(kind, "rounds") == 0 ||
			   strcmp(kind, "review") == 0) {
			int seen = 0;
			for (int k = 0; k < p->nretried; k++)
				seen |= strcmp(p->retried[k], task) == 0;
			if (!seen && p->nretried < 16) {
				snprintf(p->retried[p->nretried++], sizeof(p->retried[0]), "%s", task);
				i = find(options, "retry");
			}
		}
	}
	*out = i >= 0 ? i : stop_option(p, options);
	return 0;
}
