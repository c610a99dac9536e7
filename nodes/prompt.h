/*
 * prompt — the factory's prompts: text files in nodes/prompts/, built into
 * the binary (core/embed.h), with {{name}} placeholders.
 */
#ifndef ORCH_NODES_PROMPT_H
#define ORCH_NODES_PROMPT_H

#include "core/buf.h"

/* Appends the prompt nodes/prompts/<name> to `out` with every {{key}}
 * replaced by its value; `vars` is {key, value, ..., NULL}. A placeholder
 * without a value is left empty. ERR_INTERNAL when the prompt is not built
 * in. Thread-safe. */
int nd_prompt(const char *name, const char *const *vars, buf *out);

#endif
