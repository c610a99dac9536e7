/* health — the registry of long-running parts and their state. */
#include "core/health.h"

#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_MAX 64

typedef struct part {
	char name[64];
	health_state state;
	char reason[256];
	int64_t since_ms;
} part;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static part g_parts[HEALTH_MAX];
static int g_n;

static part *find(const char *name)
{
	for (int i = 0; i < g_n; i++) {
		if (strcmp(g_parts[i].name, name) == 0)
			return &g_parts[i];
	}
	return NULL;
}

const char *health_state_name(health_state st)
{
	switch (st) {
	case HEALTH_OK:
		return "ok";
	case HEALTH_DEGRADED:
		return "degraded";
	case HEALTH_DOWN:
		return "down";
	}
	return "unknown";
}

void health_report(const char *name, health_state st, const char *fmt, ...)
{
	char reason[256] = "";
	int changed = 0;
	int was_new = 0;
	health_state before = HEALTH_OK;

	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(reason, sizeof(reason), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&g_lock);
	part *p = find(name);
	if (!p && g_n < HEALTH_MAX) {
		p = &g_parts[g_n++];
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->state = st;
		p->since_ms = util_wall_ms();
		was_new = 1;
	}
	if (p) {
		before = p->state;
		if (!was_new && p->state != st) {
			p->state = st;
			p->since_ms = util_wall_ms();
			changed = 1;
		}
		snprintf(p->reason, sizeof(p->reason), "%s", reason);
	}
	pthread_mutex_unlock(&g_lock);

	if (!p)
		return;
	if (was_new && st != HEALTH_OK)
		changed = 1;
	if (!changed)
		return;
	if (st == HEALTH_DOWN)
		log_error("health", "%s is down: %s", name, reason[0] ? reason : "no reason given");
	else if (st == HEALTH_DEGRADED)
		log_warn("health", "%s is degraded: %s", name, reason[0] ? reason : "no reason given");
	else if (before != HEALTH_OK)
		log_info("health", "%s is working again", name);
}

void health_forget(const char *name)
{
	pthread_mutex_lock(&g_lock);
	part *p = find(name);
	if (p) {
		*p = g_parts[g_n - 1];
		g_n--;
	}
	pthread_mutex_unlock(&g_lock);
}

health_state health_worst(void)
{
	health_state w = HEALTH_OK;

	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_n; i++) {
		if (g_parts[i].state > w)
			w = g_parts[i].state;
	}
	pthread_mutex_unlock(&g_lock);
	return w;
}

json_t *health_snapshot(void)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_n; i++) {
		json_t *e = json_pack("{s:s, s:s, s:I}", "state", health_state_name(g_parts[i].state),
				      "reason", g_parts[i].reason, "since_ms",
				      (json_int_t)g_parts[i].since_ms);
		if (!e || json_object_set_new(o, g_parts[i].name, e) < 0) {
			pthread_mutex_unlock(&g_lock);
			json_decref(o);
			return NULL;
		}
	}
	pthread_mutex_unlock(&g_lock);
	return o;
}

void health_reset(void)
{
	pthread_mutex_lock(&g_lock);
	g_n = 0;
	pthread_mutex_unlock(&g_lock);
}
