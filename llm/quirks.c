/* quirks — the known providers' quirks. See quirks.h. */
#include "llm/quirks.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

typedef struct profile {
	const char *name;
	const char *max_tokens_field;
	int temperature;
	double temperature_max;
	int top_p;
	int stop;
	int reasoning;
	const char *efforts;
	int no_temperature_reasoning;
} profile;

/* What each provider was seen to refuse (README, "Providers and their quirks"). */
static const profile PROFILES[] = {
	{"generic", "", LLM_Q_SEND, 2.0, LLM_Q_SEND, LLM_Q_SEND, LLM_REASON_EFFORT, "", 0},
	{"openai", "", LLM_Q_SEND, 2.0, LLM_Q_SEND, LLM_Q_SEND, LLM_REASON_NONE, "", 0},
	{"openai-reasoning", "max_completion_tokens", LLM_Q_OMIT, 2.0, LLM_Q_OMIT, LLM_Q_OMIT,
	 LLM_REASON_EFFORT, "minimal,low,medium,high", 0},
	{"gemini-3", "", LLM_Q_SEND, 2.0, LLM_Q_SEND, LLM_Q_SEND, LLM_REASON_EFFORT, "low,high", 0},
	{"claude", "", LLM_Q_SEND, 1.0, LLM_Q_ALONE, LLM_Q_SEND, LLM_REASON_THINKING,
	 "low,medium,high", 1},
	{"openrouter-claude", "", LLM_Q_SEND, 1.0, LLM_Q_ALONE, LLM_Q_SEND, LLM_REASON_OPENROUTER,
	 "low,medium,high", 1},
};

static const char *const NAMES[] = {"generic", "openai", "openai-reasoning", "gemini-3", "claude",
				    "openrouter-claude", NULL};

const char *const *llm_quirks_profiles(void)
{
	return NAMES;
}

int llm_quirks_profile(const char *name, llm_quirks *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < sizeof(PROFILES) / sizeof(PROFILES[0]); i++) {
		const profile *p = &PROFILES[i];
		if (strcmp(p->name, name) != 0)
			continue;
		snprintf(out->profile, sizeof(out->profile), "%s", p->name);
		snprintf(out->max_tokens_field, sizeof(out->max_tokens_field), "%s",
			 p->max_tokens_field);
		out->temperature = p->temperature;
		out->temperature_max = p->temperature_max;
		out->top_p = p->top_p;
		out->stop = p->stop;
		out->reasoning = p->reasoning;
		snprintf(out->efforts, sizeof(out->efforts), "%s", p->efforts);
		out->no_temperature_reasoning = p->no_temperature_reasoning;
		return 0;
	}
	return err_set(ERR_NOTFOUND,
		       "unknown provider '%s' (known: generic, openai, openai-reasoning, gemini-3, "
		       "claude, openrouter-claude)", name);
}

static const char *send_name(int v)
{
	return v == LLM_Q_OMIT ? "omit" : v == LLM_Q_ALONE ? "alone" : "send";
}

static const char *reason_name(int v)
{
	switch (v) {
	case LLM_REASON_EFFORT: return "reasoning_effort";
	case LLM_REASON_OPENROUTER: return "openrouter";
	case LLM_REASON_THINKING: return "thinking";
	default: return "none";
	}
}

/* A quirk's word into *out; -1 when it is not one of `words`. */
static int word(const json_t *v, const char *const *words, const int *values, int *out)
{
	const char *s = json_string_value(v);

	for (size_t i = 0; s && words[i]; i++)
		if (strcmp(s, words[i]) == 0) {
			*out = values[i];
			return 0;
		}
	return -1;
}

int llm_quirks_override(llm_quirks *q, const json_t *o, const char *where)
{
	static const char *const sends[] = {"send", "omit", NULL};
	static const int sendv[] = {LLM_Q_SEND, LLM_Q_OMIT};
	static const char *const tops[] = {"send", "omit", "alone", NULL};
	static const int topv[] = {LLM_Q_SEND, LLM_Q_OMIT, LLM_Q_ALONE};
	static const char *const reasons[] = {"none", "reasoning_effort", "openrouter", "thinking",
					      NULL};
	static const int reasonv[] = {LLM_REASON_NONE, LLM_REASON_EFFORT, LLM_REASON_OPENROUTER,
				      LLM_REASON_THINKING};
	const char *k;
	json_t *v;

	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return err_set(ERR_INVALID, "%s: 'quirks' must be an object", where);
	json_object_foreach((json_t *)o, k, v) {
		int bad = 0;

		if (strcmp(k, "max_tokens_field") == 0) {
			const char *s = json_string_value(v);
			bad = !s || (strcmp(s, "max_tokens") != 0 &&
				     strcmp(s, "max_completion_tokens") != 0);
			if (!bad)
				snprintf(q->max_tokens_field, sizeof(q->max_tokens_field), "%s", s);
		} else if (strcmp(k, "temperature") == 0) {
			bad = word(v, sends, sendv, &q->temperature) < 0;
		} else if (strcmp(k, "temperature_max") == 0) {
			bad = !json_is_number(v) || json_number_value(v) <= 0 ||
			      json_number_value(v) > 2;
			if (!bad)
				q->temperature_max = json_number_value(v);
		} else if (strcmp(k, "top_p") == 0) {
			bad = word(v, tops, topv, &q->top_p) < 0;
		} else if (strcmp(k, "stop") == 0) {
			bad = word(v, sends, sendv, &q->stop) < 0;
		} else if (strcmp(k, "reasoning") == 0) {
			bad = word(v, reasons, reasonv, &q->reasoning) < 0;
		} else if (strcmp(k, "efforts") == 0) {
			size_t i, used = 0;
			json_t *e;
			bad = !json_is_array(v);
			q->efforts[0] = '\0';
			json_array_foreach(v, i, e) {
				const char *s = json_string_value(e);
				int n;
				if (!s || !*s || strchr(s, ',') || strlen(s) > 15) {
					bad = 1;
					break;
				}
				n = snprintf(q->efforts + used, sizeof(q->efforts) - used, "%s%s",
					     used ? "," : "", s);
				if (n < 0 || (size_t)n >= sizeof(q->efforts) - used) {
					bad = 1;
					break;
				}
				used += (size_t)n;
			}
		} else if (strcmp(k, "no_temperature_reasoning") == 0) {
			bad = !json_is_boolean(v);
			if (!bad)
				q->no_temperature_reasoning = json_is_true(v);
		} else {
			return err_set(ERR_INVALID,
				       "%s: unknown quirk '%s' (known: max_tokens_field, temperature, "
				       "temperature_max, top_p, stop, reasoning, efforts, "
				       "no_temperature_reasoning)", where, k);
		}
		if (bad)
			return err_set(ERR_INVALID,
				       "%s: quirk '%s' takes %s", where, k,
				       strcmp(k, "max_tokens_field") == 0
					       ? "\"max_tokens\" or \"max_completion_tokens\""
				       : strcmp(k, "temperature") == 0 || strcmp(k, "stop") == 0
					       ? "\"send\" or \"omit\""
				       : strcmp(k, "temperature_max") == 0 ? "a number above 0, at most 2"
				       : strcmp(k, "top_p") == 0 ? "\"send\", \"omit\" or \"alone\""
				       : strcmp(k, "reasoning") == 0
					       ? "\"none\", \"reasoning_effort\", \"openrouter\" or "
						 "\"thinking\""
				       : strcmp(k, "efforts") == 0
					       ? "a list of effort names such as [\"low\", \"high\"]"
					       : "true or false");
	}
	return 0;
}

/* 1 when `effort` is in the comma-separated `list`. */
static int listed(const char *list, const char *effort)
{
	size_t n = strlen(effort);

	for (const char *p = list; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, effort, n) == 0)
			return 1;
		p += len + (comma ? 1 : 0);
	}
	return 0;
}

int llm_quirks_check(const llm_quirks *q, const llm_params *p, const char *where)
{
	if (p->temperature >= 0 && q->temperature == LLM_Q_OMIT)
		return err_set(ERR_INVALID,
			       "%s: provider '%s' takes only the model's default temperature (it "
			       "refuses any other): remove \"temperature\"", where, q->profile);
	if (p->temperature > q->temperature_max)
		return err_set(ERR_INVALID, "%s: provider '%s' takes a temperature of at most %g",
			       where, q->profile, q->temperature_max);
	if (p->top_p > 0 && q->top_p == LLM_Q_OMIT)
		return err_set(ERR_INVALID, "%s: provider '%s' takes no top_p: remove \"top_p\"",
			       where, q->profile);
	if (p->top_p > 0 && p->temperature >= 0 && q->top_p == LLM_Q_ALONE)
		return err_set(ERR_INVALID,
			       "%s: provider '%s' refuses temperature and top_p together: keep one",
			       where, q->profile);
	if (p->reasoning_effort[0] && q->reasoning == LLM_REASON_NONE)
		return err_set(ERR_INVALID,
			       "%s: provider '%s' takes no reasoning effort: remove "
			       "\"reasoning_effort\" (or choose the provider profile of a reasoning "
			       "model)", where, q->profile);
	if (p->reasoning_effort[0] && q->efforts[0] && !listed(q->efforts, p->reasoning_effort))
		return err_set(ERR_INVALID, "%s: provider '%s' takes the reasoning efforts %s, not '%s'",
			       where, q->profile, q->efforts, p->reasoning_effort);
	if (p->reasoning_effort[0] && q->reasoning == LLM_REASON_THINKING &&
	    llm_quirks_thinking_budget(p->reasoning_effort) == 0)
		return err_set(ERR_INVALID, "%s: a thinking budget is known for the efforts low, medium "
					    "and high, not '%s'", where, p->reasoning_effort);
	return 0;
}

int llm_quirks_thinking_budget(const char *effort)
{
	if (strcmp(effort, "low") == 0)
		return 1024;
	if (strcmp(effort, "medium") == 0)
		return 4096;
	if (strcmp(effort, "high") == 0)
		return 16384;
	return 0;
}

json_t *llm_quirks_json(const llm_quirks *q)
{
	json_t *efforts = json_array();
	const char *p = q->efforts;

	while (efforts && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		json_array_append_new(efforts, json_stringn(p, len));
		p += len + (comma ? 1 : 0);
	}
	return json_pack("{s:s, s:s, s:s, s:f, s:s, s:s, s:s, s:o, s:b}", "profile", q->profile,
			 "max_tokens_field", q->max_tokens_field, "temperature",
			 send_name(q->temperature), "temperature_max", q->temperature_max, "top_p",
			 send_name(q->top_p), "stop", send_name(q->stop), "reasoning",
			 reason_name(q->reasoning), "efforts", efforts ? efforts : json_array(),
			 "no_temperature_reasoning", q->no_temperature_reasoning);
}
