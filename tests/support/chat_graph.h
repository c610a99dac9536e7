/*
 * chat_graph — a small graph that talks the bot's contract (bot/bot.h), for
 * the bot tests, the terminal test and the benchmark. Graph "chattest":
 *
 *   text "approve..."  -> asks an approval (ask), waits for it (gate), says
 *                         "decision: <option> by <name>" or "decision: expired"
 *   text "question..." -> asks "What is your name?" (askq), waits for the
 *                         "input" event (waitq), says "hello <text>"
 *   text "slow..."     -> works until ts_chat_graph_release() (for typing)
 *   anything else      -> says "echo: <text>"
 *
 * A node answers on the channel its input came from: "<channel>.send" to
 * the input's chat.
 */
#ifndef ORCH_TESTS_CHAT_GRAPH_H
#define ORCH_TESTS_CHAT_GRAPH_H

#include "engine/graph.h"

#define CHAT_GRAPH "chattest"

/* Builds and compiles the graph; the caller frees it with eng_graph_free.
 * `approvers` (may be NULL) becomes the approval's approvers list. */
eng_graph *ts_chat_graph(const char *approvers_json);

/* Lets "slow" runs finish. */
void ts_chat_graph_release(void);

#endif
