/*
 * netspec — the part of a project's spec that says what network its
 * workers and merges get (the spawner's egress proxy, README "Network")
 * and which command installs its dependencies: "network" ("none",
 * "registries", or host patterns separated by commas: "a.org, 10.0.0.5:81")
 * and "setup_command". Both are optional: a spec without "network" leaves
 * the policy to the spawner's configuration (ORCH_NET_POLICY); the phases
 * with network are always the configuration's (ORCH_NET_PHASES).
 *
 * The model writes them while the spec is discussed (nodes/prompts); the
 * person sets them in any message, in the chat or the terminal, with a line
 * of its own, which wins over what the model wrote and, once the project is
 * being built, applies to the workers and merges that start after it:
 *   network: none | registries | HOST-PATTERN[, HOST-PATTERN...]
 *   setup command: COMMAND        ("setup command: none" removes it)
 * Every spawn request of the project (work and merge) carries them
 * (nd_netspec_request, "setup_command").
 */
#ifndef ORCH_NODES_NETSPEC_H
#define ORCH_NODES_NETSPEC_H

#include <jansson.h>

#include "core/buf.h"
#include "nodes/spec.h"

/* Reads "setup_command" and "network" of a spec that matched its schema
 * into *out (free it with nd_netspec_free in every case). ERR_INVALID
 * naming what is wrong: a network that is neither none, registries nor
 * host patterns (a pattern with a character no pattern holds). */
int nd_netspec_read(const json_t *spec, nd_netspec *out);
void nd_netspec_free(nd_netspec *n);

/* Adds "setup_command" and "network" (when set) to a normalised spec. */
void nd_netspec_to_json(const nd_netspec *n, json_t *spec);

/* The lines of the spec's HTML (nd_spec_html) that show them. */
void nd_netspec_html(const json_t *spec, buf *out);

/* The "network" of a spawn request for the project whose normalised spec
 * is `spec`: its policy and hosts, and for "registries" the spec's
 * language (its first word, lower case). Owned; NULL when the spec names
 * no policy (the spawner's default applies). */
json_t *nd_netspec_request(const json_t *spec);

/* Applies the "network:" and "setup command:" lines of a person's message
 * to the normalised spec `spec` (changed in place), the last line of a
 * kind winning. Returns how many were applied (0: none), and appends what
 * they set to `said` ("network: registries; setup command: npm ci") when
 * it is not NULL. ERR_INVALID with a message saying what to write when a
 * value cannot be used; nothing is changed then. */
int nd_netspec_said(const char *text, json_t *spec, buf *said);

#endif
