/*
 * limit — Telegram's sending limits, kept in memory by the one relay that
 * sends (the leader bot process).
 *
 *   per chat      at least `chat_gap_ms` between two messages (1 s)
 *   per group     at most `group_per_window` in `group_window_ms` (20/min)
 *   overall       at most `global_per_window` in `global_window_ms` (30/s)
 *   retry_after   a 429 blocks its chat (or, for chat 0, everything) until then
 *
 * bot_limit_wait says how long to wait before the next message to a chat;
 * bot_limit_note records one sent. Thread-safe (one mutex).
 */
#ifndef ORCH_BOT_LIMIT_H
#define ORCH_BOT_LIMIT_H

#include <stdint.h>

typedef struct bot_limits {
	int64_t chat_gap_ms;       /* default 1000 */
	int group_per_window;      /* default 20 */
	int64_t group_window_ms;   /* default 60000 */
	int global_per_window;     /* default 30 */
	int64_t global_window_ms;  /* default 1000 */
} bot_limits;

/* Telegram's limits multiplied by `scale` (1.0: the real ones): a scale of
 * 2 allows twice the messages per second, 0.5 half (every interval is
 * divided by it, so every ratio is kept; tests use a large scale). */
void bot_limits_default(bot_limits *out, double scale);

typedef struct bot_limiter bot_limiter;

int bot_limiter_new(bot_limiter **out, const bot_limits *lim);
void bot_limiter_free(bot_limiter *l);

/* Milliseconds to wait before a message to `chat_id` may go (0: now), as of
 * monotonic time `now_ms`. Groups (negative ids) also obey the group
 * window. `chat_id` 0 checks only the overall limit (chat actions,
 * callback answers). */
int64_t bot_limit_wait(bot_limiter *l, int64_t chat_id, int64_t now_ms);

/* Records a message sent to `chat_id` (0: counts only overall) at now_ms. */
void bot_limit_note(bot_limiter *l, int64_t chat_id, int64_t now_ms);

/* Blocks `chat_id` (0: everything) until now_ms + ms (retry_after). */
void bot_limit_block(bot_limiter *l, int64_t chat_id, int64_t now_ms, int64_t ms);

#endif
