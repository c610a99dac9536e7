/*
 * quirks — what a provider's chat completions endpoint refuses or wants
 * differently, as a table of known providers, and a model's own sampling
 * parameters (temperature, top_p, reasoning effort).
 *
 * A model names a provider profile ("provider": "openai-reasoning") and may
 * override single quirks ("quirks": {"top_p": "omit"}). The wire layer
 * (llm/wire.h) applies them to every request body: the token limit under
 * the field the provider takes, a temperature the model does not take left
 * out (or lowered to its maximum), top_p left out where it may not come
 * with a temperature, stop sequences left out where refused, and the
 * reasoning effort in the form the provider reads.
 *
 * The known profiles (README, "Providers and their quirks"):
 *
 *   generic           any OpenAI-compatible server (llama.cpp, vLLM, Ollama)
 *   openai            OpenAI's chat models (gpt-4o, gpt-4.1)
 *   openai-reasoning  OpenAI's GPT-5 family and o-series: max_completion_tokens,
 *                     only the default temperature and top_p, no stop,
 *                     reasoning_effort minimal|low|medium|high
 *   gemini-3          Gemini 3 Pro on Google's OpenAI-compatible endpoint:
 *                     reasoning_effort low|high
 *   claude            Claude Opus 4.x on Anthropic's OpenAI-compatible
 *                     endpoint: temperature at most 1 and never with top_p,
 *                     reasoning as "thinking" with a token budget, no
 *                     temperature while thinking
 *   openrouter-claude Claude Opus 4.x through OpenRouter: as claude, the
 *                     reasoning as {"reasoning": {"effort"}}
 *
 * Pure functions over plain structs; thread-safe.
 */
#ifndef ORCH_LLM_QUIRKS_H
#define ORCH_LLM_QUIRKS_H

#include <jansson.h>
#include <stddef.h>

/* How a sampling parameter is treated. */
enum {
	LLM_Q_SEND = 0,  /* sent as asked */
	LLM_Q_OMIT = 1,  /* never sent (the model takes only its default) */
	LLM_Q_ALONE = 2, /* top_p: not sent together with a temperature */
};

/* How a reasoning effort is sent. */
enum {
	LLM_REASON_NONE = 0,       /* the model takes none: refused in the configuration */
	LLM_REASON_EFFORT = 1,     /* "reasoning_effort": "high" (OpenAI, Gemini) */
	LLM_REASON_OPENROUTER = 2, /* "reasoning": {"effort": "high"} */
	LLM_REASON_THINKING = 3,   /* "thinking": {"type": "enabled", "budget_tokens": N} */
};

typedef struct llm_quirks {
	char profile[32];          /* the profile they start from */
	char max_tokens_field[32]; /* "max_tokens" or "max_completion_tokens"; "": the endpoint's */
	int temperature;           /* LLM_Q_SEND or LLM_Q_OMIT */
	double temperature_max;    /* a higher temperature is lowered to this */
	int top_p;                 /* LLM_Q_SEND, LLM_Q_OMIT or LLM_Q_ALONE */
	int stop;                  /* LLM_Q_SEND or LLM_Q_OMIT */
	int reasoning;             /* LLM_REASON_* */
	char efforts[96];          /* the efforts it takes, comma-separated; "": any */
	int no_temperature_reasoning; /* while reasoning, no temperature is sent */
} llm_quirks;

/* A model's own sampling parameters, used when a request sets none. */
typedef struct llm_params {
	double temperature;        /* < 0: unset */
	double top_p;              /* <= 0: unset */
	char reasoning_effort[16]; /* "": unset */
} llm_params;

/* The profile `name` into *out. ERR_NOTFOUND listing the known ones. */
int llm_quirks_profile(const char *name, llm_quirks *out);

/* The names of the profiles, NULL-terminated. Borrowed. */
const char *const *llm_quirks_profiles(void);

/* Applies the overrides of a model's "quirks" object (may be NULL) to *q.
 * ERR_INVALID naming `where` and the key for an unknown key or value. */
int llm_quirks_override(llm_quirks *q, const json_t *o, const char *where);

/* Checks the parameters against the quirks: a temperature the model does
 * not take or above its maximum, a reasoning effort it does not take.
 * ERR_INVALID with the reason and what to do, naming `where`. */
int llm_quirks_check(const llm_quirks *q, const llm_params *p, const char *where);

/* The quirks as JSON (for `models show` and the web), every field spelled
 * as the configuration takes it. Owned. */
json_t *llm_quirks_json(const llm_quirks *q);

/* The "thinking" budget of an effort (low 1024, medium 4096, high 16384). */
int llm_quirks_thinking_budget(const char *effort);

#endif
