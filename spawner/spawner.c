#include "spawner/spawner.h"
#include "core/config.h"
#include "core/err.h"
#include "core/gitx.h"
#include "core/health.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/redis.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/deadletter.h"
#include "engine/outbox.h"
#include "engine/stream.h"
#include "spawner/egress.h"
#include "spawner/gitws.h"
#include "spawner/sandbox.h"
#include "spawner/spw_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESULTS_MAXLEN "10000"
/* attempts at an item that fails for a reason of its own (not a server
 * that is down) before it is set aside as a dead letter */
#define POISON_ATTEMPTS 3
#define SWEEP_EVERY_MS 3000
#define MARKER_TTL_S "2592000" /* 30 days: a result is announced once per id */
#define LOG_RETRY_MS 5000

/* Stores the result once per id (the marker), announces it, and
 * acknowledges the entry, atomically. KEYS: results stream, spawn stream,
 * marker. ARGV: group, entry id ("" for none), request id, result, ttl,
 * maxlen. Returns 1 when the result was announced now, 0 when it had been. */
static const char FINISH_LUA[] =
	"local fresh = 0\n"
	"if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[5]) then\n"
	"  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'id', ARGV[3], 'result', ARGV[4])\n"
	"  fresh = 1\n"
	"end\n"
	"redis.call('PUBLISH', 'worker:result:' .. ARGV[3], ARGV[4])\n"
	"if ARGV[2] ~= '' then redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) end\n"
	"return fresh\n";

static const pg_stmt STMT_CLAIM = {
	"spw_claim",
	"INSERT INTO workers (id, task, project, thread_id, run_id, request, owner, lease_until, "
	"workspace) VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::jsonb, $7, "
	"now() + make_interval(secs => $8::bigint / 1000.0), $9) "
	"ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, attempt = workers.attempt + 1, "
	"lease_until = EXCLUDED.lease_until, workspace = EXCLUDED.workspace, updated_at = now() "
	"WHERE workers.state = 'running' AND (workers.lease_until IS NULL OR "
	"workers.lease_until < now()) RETURNING attempt",
	9,
};

static const pg_stmt STMT_LOOKUP = {
	"spw_lookup",
	"SELECT state, result::text, coalesce(lease_until > now(), false), owner "
	"FROM workers WHERE id = $1",
	1,
};

static const pg_stmt STMT_INVALID = {
	"spw_invalid",
	"INSERT INTO workers (id, thread_id, run_id, state, status, request, result, owner, "
	"finished_at) VALUES ($1, $2::bigint, $3::bigint, 'finished', 'invalid', $4::jsonb, "
	"$5::jsonb, $6, now()) ON CONFLICT (id) DO NOTHING",
	6,
};

static const pg_stmt STMT_STORE = {
	"spw_store",
	"UPDATE workers SET state = 'finished', status = $4, result = $5::jsonb, "
	"finished_at = now(), updated_at = now(), lease_until = NULL "
	"WHERE id = $1 AND owner = $2 AND attempt = $3::int AND state = 'running'",
	5,
};

static const pg_stmt STMT_RENEW = {
	"spw_renew",
	"UPDATE workers SET lease_until = now() + make_interval(secs => $4::bigint / 1000.0), "
	"updated_at = now() WHERE id = $1 AND owner = $2 AND attempt = $3::int "
	"AND state = 'running' RETURNING cancel_requested",
	4,
};

static const pg_stmt STMT_PROGRESS = {
	"spw_progress",
	"UPDATE workers SET progress = $4::jsonb WHERE id = $1 AND owner = $2 "
	"AND attempt = $3::int AND state = 'running'",
	4,
};

static const pg_stmt STMT_RELEASE = {
	"spw_release",
	"UPDATE workers SET lease_until = now() - interval '1 second', updated_at = now() "
	"WHERE id = $1 AND owner = $2 AND attempt = $3::int AND state = 'running'",
	3,
};

/* --- configuration --- */

static int env_size(const char *name, int64_t def, int64_t *out)
{
	const char *v = getenv(name);

	*out = def;
	if (!v || !*v)
		return 0;
	if (cfg_parse_size(v, out) < 0 || *out < (1 << 20))
		return err_set(ERR_INVALID, "%s must be a size of at least 1M (\"512M\", \"2G\"), "
					    "got '%s'", name, v);
	return 0;
}

/* The registries of each language, as shipped (README: "Network"). */
static const char DEFAULT_REGISTRIES[] =
	"python=pypi.org files.pythonhosted.org\n"
	"node=registry.npmjs.org registry.yarnpkg.com\n"
	"go=proxy.golang.org sum.golang.org\n"
	"rust=index.crates.io static.crates.io crates.io\n"
	"ruby=rubygems.org index.rubygems.org\n"
	"java=repo.maven.apache.org repo1.maven.org plugins.gradle.org services.gradle.org\n";

/* A language's family name, lower case, into out[cap]. */
static void language_family(const char *lang, char *out, size_t cap)
{
	static const char *const alias[][2] = {
		{"python3", "python"}, {"py", "python"},     {"javascript", "node"},
		{"typescript", "node"}, {"js", "node"},      {"ts", "node"},
		{"nodejs", "node"},    {"npm", "node"},       {"golang", "go"},
		{"rs", "rust"},        {"kotlin", "java"},    {"scala", "java"},
		{"jvm", "java"},       {NULL, NULL},
	};
	size_t n = 0;

	for (; lang[n] && n + 1 < cap; n++)
		out[n] = (char)tolower((unsigned char)lang[n]);
	out[n] = '\0';
	for (int i = 0; alias[i][0]; i++)
		if (strcmp(out, alias[i][0]) == 0) {
			snprintf(out, cap, "%s", alias[i][1]);
			return;
		}
}

int spw_net_registries(const spw_config *cfg, const char *language, char *out, size_t cap)
{
	char fam[64];
	const char *p = cfg->net_registries;
	size_t fl;

	language_family(language, fam, sizeof(fam));
	fl = strlen(fam);
	while (*p) {
		size_t n = strcspn(p, "\n");
		if (fl && n > fl && strncmp(p, fam, fl) == 0 && p[fl] == '=') {
			snprintf(out, cap, "%.*s", (int)(n - fl - 1), p + fl + 1);
			return out[0] ? 0 : err_set(ERR_NOTFOUND, "no registries are configured for %s",
						    fam);
		}
		p += n;
		if (*p)
			p++;
	}
	return err_set(ERR_NOTFOUND,
		       "no registries are configured for the language '%s': list its hosts in "
		       "ORCH_NET_REGISTRIES_%s, or give the project a list of hosts",
		       language, fam[0] ? fam : "LANGUAGE");
}

/* The longest ORCH_NET_SOCKET_DIR: a unix socket's path holds at most 107
 * bytes, and under the folder go "/<pid>-<8 hex>" (at most 17 bytes) and
 * "/<n>.sock" (at most 26). */
#define NET_SOCKET_DIR_MAX 60

/* ORCH_NET_SOCKET_DIR: an absolute folder, short enough for the socket
 * paths under it. */
static int net_socket_dir_from_env(spw_config *out)
{
	const char *v = getenv("ORCH_NET_SOCKET_DIR");

	out->net_socket_dir[0] = '\0';
	if (!v || !*v)
		return 0;
	if (v[0] != '/' || strlen(v) > NET_SOCKET_DIR_MAX)
		return err_set(ERR_INVALID, "ORCH_NET_SOCKET_DIR must be an absolute folder of at most "
					    "%d bytes (the sockets' paths under it must fit), got '%s'",
			       NET_SOCKET_DIR_MAX, v);
	snprintf(out->net_socket_dir, sizeof(out->net_socket_dir), "%s", v);
	return 0;
}

/* The registry lists: the built-in ones, each replaced by
 * ORCH_NET_REGISTRIES_<LANGUAGE>, and the languages only the environment
 * names. */
static int net_registries_from_env(spw_config *out)
{
	extern char **environ;
	static const char prefix[] = "ORCH_NET_REGISTRIES_";
	buf b;
	const char *p = DEFAULT_REGISTRIES;
	int rc = 0;

	buf_init(&b, sizeof(out->net_registries) - 1);
	while (*p && rc == 0) {
		size_t n = strcspn(p, "\n"), ln = strcspn(p, "=");
		char var[96], lang[32];
		const char *v;

		snprintf(lang, sizeof(lang), "%.*s", (int)ln, p);
		snprintf(var, sizeof(var), "%s", prefix);
		for (size_t i = 0; lang[i]; i++)
			var[sizeof(prefix) - 1 + i] = (char)toupper((unsigned char)lang[i]);
		var[sizeof(prefix) - 1 + strlen(lang)] = '\0';
		v = getenv(var);
		if (v)
			rc = buf_printf(&b, "%s=%s\n", lang, v);
		else
			rc = buf_printf(&b, "%.*s\n", (int)n, p);
		p += n + 1;
	}
	for (char **e = environ; rc == 0 && *e; e++) {
		const char *eq = strchr(*e, '=');
		char lang[64], fam[64], probe[72];
		size_t ln;

		if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0 || !eq)
			continue;
		ln = (size_t)(eq - *e) - (sizeof(prefix) - 1);
		if (ln == 0 || ln >= sizeof(lang))
			return err_set(ERR_INVALID, "%.*s: the language name is empty or too long",
				       (int)(eq - *e), *e);
		for (size_t i = 0; i < ln; i++)
			lang[i] = (char)tolower((unsigned char)(*e)[sizeof(prefix) - 1 + i]);
		lang[ln] = '\0';
		language_family(lang, fam, sizeof(fam));
		if (strcmp(fam, lang) != 0)
			return err_set(ERR_INVALID, "%.*s: name the language's family: "
						    "ORCH_NET_REGISTRIES_%s", (int)(eq - *e), *e, fam);
		snprintf(probe, sizeof(probe), "%s=", fam);
		if (strncmp(DEFAULT_REGISTRIES, probe, strlen(probe)) == 0)
			continue; /* a built-in language: replaced above */
		snprintf(probe, sizeof(probe), "\n%s=", fam);
		if (strstr(DEFAULT_REGISTRIES, probe))
			continue;
		rc = buf_printf(&b, "%s=%s\n", lang, eq + 1);
	}
	if (rc == 0) {
		/* every list must parse */
		const char *q = b.data ? b.data : "";
		while (*q && rc == 0) {
			size_t n = strcspn(q, "\n"), ln = strcspn(q, "=");
			char list[4096];
			egr_policy *pol = NULL;

			snprintf(list, sizeof(list), "%.*s", (int)(n - ln - 1), q + ln + 1);
			if (egr_policy_new(&pol) < 0 || egr_policy_add_list(pol, list) < 0)
				rc = err_wrap("ORCH_NET_REGISTRIES_%.*s", (int)ln, q);
			egr_policy_free(pol);
			q += n;
			if (*q)
				q++;
		}
	}
	if (rc == 0)
		snprintf(out->net_registries, sizeof(out->net_registries), "%s", b.data ? b.data : "");
	else if (rc == ERR_TOOBIG)
		rc = err_set(ERR_INVALID, "ORCH_NET_REGISTRIES_*: the lists are longer than %zu bytes",
			     sizeof(out->net_registries) - 1);
	buf_free(&b);
	return rc;
}

/* Reads one integer setting into *field (an int). */
static int env_int_field(const char *name, int64_t def, int64_t min, int64_t max, int *field)
{
	int64_t v = 0;
	int rc = cfg_env_int(name, def, min, max, &v);

	if (rc == 0)
		*field = (int)v;
	return rc;
}

/* Reads settings in order until one is refused: each row a variable, its
 * kind, default and bounds, and where it goes. */
typedef struct env_row {
	const char *name;
	char kind; /* 'i' int, 'l' int64_t, 'd' duration in ms, 's' string */
	int64_t def, min, max;
	const char *sdef;
	void *field;
	size_t cap; /* strings */
} env_row;

static int env_rows(const env_row *rows, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const env_row *r = &rows[i];

		if (r->kind == 'i')
			rc = env_int_field(r->name, r->def, r->min, r->max, r->field);
		else if (r->kind == 'l')
			rc = cfg_env_int(r->name, r->def, r->min, r->max, r->field);
		else if (r->kind == 'd')
			rc = cfg_env_duration_ms(r->name, r->def, r->min, r->max, r->field);
		else
			rc = cfg_env_str(r->name, r->sdef, r->field, r->cap);
	}
	return rc;
}

/* The network settings: the default policy, its phases, the registries'
 * host lists and where the proxy's sockets go. */
static int config_net(spw_config *out)
{
	char phases[128];
	int rc;

	rc = env_int_field("ORCH_NET_MAX_CONNS", 32, 1, 4096, &out->net_max_conns);
	if (rc == 0)
		rc = env_size("ORCH_NET_MAX_BYTES", (int64_t)2 << 30, &out->net_max_bytes);
	if (rc == 0)
		rc = cfg_env_str("ORCH_NET_POLICY", "none", out->net_policy, sizeof(out->net_policy));
	if (rc == 0 && strcmp(out->net_policy, "none") != 0 &&
	    strcmp(out->net_policy, "registries") != 0) {
		egr_policy *pol = NULL;

		rc = egr_policy_new(&pol);
		if (rc == 0 && egr_policy_add_list(pol, out->net_policy) < 0)
			rc = err_wrap("ORCH_NET_POLICY (none, registries or host patterns)");
		else if (rc == 0 && egr_policy_count(pol) == 0)
			rc = err_set(ERR_INVALID, "ORCH_NET_POLICY must be none, registries or host "
						  "patterns");
		egr_policy_free(pol);
	}
	if (rc == 0)
		rc = cfg_env_str("ORCH_NET_PHASES", "setup", phases, sizeof(phases));
	if (rc == 0 && spw_phases_parse(phases, &out->net_phases) < 0)
		rc = err_wrap("ORCH_NET_PHASES");
	if (rc == 0)
		rc = net_registries_from_env(out);
	if (rc == 0)
		rc = net_socket_dir_from_env(out);
	return rc;
}

int spw_config_from_env(spw_config *out, const char *redis_url, const char *data_dir)
{
	char repos[1100];
	sbx_backend b;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->redis_url, sizeof(out->redis_url), "%s", redis_url ? redis_url : "");
	snprintf(out->data_dir, sizeof(out->data_dir), "%s", data_dir ? data_dir : ".");
	snprintf(repos, sizeof(repos), "%s/repos", out->data_dir);
	{
		const env_row rows[] = {
			{"ORCH_MAX_WORKERS", 'i', 2, 1, 256, NULL, &out->max_workers, 0},
			{"ORCH_SPAWN_CLAIM_IDLE", 'd', 60000, 1000, 86400000, NULL,
			 &out->claim_idle_ms, 0},
			{"ORCH_SPAWN_MAX_ATTEMPTS", 'i', 3, 1, 100, NULL, &out->max_attempts, 0},
			{"ORCH_SPAWN_CLEANUP", 'd', 600000, 1000, 86400000, NULL, &out->cleanup_ms, 0},
			{"ORCH_SPAWN_RELAY", 'i', 1, 0, 1, NULL, &out->relay, 0},
			{"ORCH_SPAWN_REPO_ROOTS", 's', 0, 0, 0, repos, out->repo_roots,
			 sizeof(out->repo_roots)},
			{"ORCH_AGENT_TOOLS", 'i', 1, 0, 1, NULL, &out->use_tools, 0},
			{"ORCH_AGENT_OUTPUT_CAP", 'l', 10000, 1000, 1 << 20, NULL, &out->output_cap, 0},
			{"ORCH_AGENT_ROLE", 's', 0, 0, 0, "worker", out->role, sizeof(out->role)},
			{"ORCH_TEST_TIMEOUT", 'd', 600000, 1000, 86400000, NULL, &out->test_timeout_ms,
			 0},
			{"ORCH_SANDBOX", 's', 0, 0, 0, "ns", out->sandbox, sizeof(out->sandbox)},
			{"ORCH_SANDBOX_IMAGE", 's', 0, 0, 0, NULL, out->sandbox_image,
			 sizeof(out->sandbox_image)},
			{"ORCH_SANDBOX_RUNTIME", 's', 0, 0, 0, NULL, out->sandbox_runtime,
			 sizeof(out->sandbox_runtime)},
			{"ORCH_WORKER_DISK_KIND", 's', 0, 0, 0, "loop", out->disk_kind,
			 sizeof(out->disk_kind)},
			{"ORCH_SANDBOX_DEGRADED", 'i', 0, 0, 1, NULL, &out->allow_degraded, 0},
			{"ORCH_FORGE_API", 's', 0, 0, 0, "", out->forge_api, sizeof(out->forge_api)},
			{"ORCH_FORGE_POLL", 'd', 60000, 0, 86400000, NULL, &out->forge_poll_ms, 0},
		};

		rc = env_rows(rows, sizeof(rows) / sizeof(rows[0]));
	}
	/* every limit of a worker (spawner/limits.c's table) */
	if (rc == 0)
		rc = spw_limits_from_env(&out->max);
	if (rc == 0)
		rc = config_net(out);
	if (rc < 0)
		return rc;
	if (sbx_backend_parse(out->sandbox, &b) < 0)
		return err_set(ERR_INVALID, "ORCH_SANDBOX must be ns or docker, got '%s'",
			       out->sandbox);
	if (strcmp(out->disk_kind, "loop") != 0 && strcmp(out->disk_kind, "tmpfs") != 0 &&
	    strcmp(out->disk_kind, "none") != 0)
		return err_set(ERR_INVALID, "ORCH_WORKER_DISK_KIND must be loop, tmpfs or none, got "
					    "'%s'", out->disk_kind);
	return 0;
}

int spw_preflight(const spw_config *cfg)
{
	char dir[PATH_MAX], ws[PATH_MAX];
	sbx_opts o;
	sbx *box = NULL;
	sbx_result res;
	sbx_cmd cmd;
	const char *argv[] = {"true", NULL};
	int rc;

	snprintf(dir, sizeof(dir), "%s/workers", cfg->data_dir);
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST)
		return err_set(ERR_IO, "cannot create ORCH_DATA_DIR %s: %s", cfg->data_dir,
			       strerror(errno));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_set(ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/transcripts", cfg->data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_set(ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	if (strcmp(cfg->disk_kind, "loop") == 0 && access("/dev/loop-control", R_OK | W_OK) != 0)
		return err_set(ERR_SANDBOX, "the loop disk quota needs /dev/loop-control (missing "
					    "here): set ORCH_WORKER_DISK_KIND=tmpfs (memory-backed) or none");
	if (gitx_init() < 0)
		return ERR_GIT;
	/* a real sandbox, so a host that cannot isolate is found now */
	snprintf(dir, sizeof(dir), "%s/workers/.preflight-%d", cfg->data_dir, (int)getpid());
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	spw_remove_worker_dir(dir);
	if (mkdir(dir, 0700) < 0 || mkdir(ws, 0700) < 0)
		return err_set(ERR_IO, "cannot create %s: %s", ws, strerror(errno));
	memset(&o, 0, sizeof(o));
	sbx_backend_parse(cfg->sandbox, &o.backend);
	o.workspace = ws;
	spw_limits_to_sbx(&cfg->max, &o);
	o.allow_degraded = cfg->allow_degraded;
	o.image = cfg->sandbox_image[0] ? cfg->sandbox_image : NULL;
	o.runtime = cfg->sandbox_runtime[0] ? cfg->sandbox_runtime : NULL;
	memset(&res, 0, sizeof(res));
	rc = sbx_new(&box, &o);
	if (rc == 0) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.argv = argv;
		cmd.timeout_ms = 30000;
		rc = sbx_run(box, &cmd, &res);
		if (rc == 0 && res.exit_code != 0)
			rc = err_set(ERR_SANDBOX, "a sandbox running 'true' exited with %d: %s",
				     res.exit_code, res.reason);
		sbx_result_free(&res);
	}
	if (rc < 0)
		err_wrap("workers cannot run on this host");
	sbx_free(box);
	spw_remove_worker_dir(dir);
	return rc;
}

/* --- the spawner --- */

typedef struct slot {
	struct spw_spawner *s;
	int busy;                /* under s->lock */
	int joinable;            /* the thread ended; join it */
	pthread_t thread;
	spw_request req;
	char entry[64];
	int attempt;
	atomic_int cancel;
	atomic_int fenced;
	atomic_int aborted;      /* the requester cancelled it: finish it as cancelled */
	rds_conn *conn;          /* the worker thread's own; live lines under log_mu */
	pthread_mutex_t log_mu;  /* live lines come from the worker and the egress proxy */
	atomic_int phase;        /* spw_phase of its worker; SPW_PHASE_IDLE when free */
	int64_t log_fail_ms;
	/* progress (the worker thread's own): the agent's steps so far and the
	 * latest phase and command, written to workers.progress */
	int prog_steps;
	char prog_phase[160];
	char prog_action[160];
} slot;

struct spw_spawner {
	spw_config cfg;
	pg_pool *pool;
	llm_service *llm;
	char id[160];
	slot *slots;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t consumer, heart, forge;
	int started, forge_started;
	atomic_int stopping;
	eng_relay *relay;
	rds_conn *relay_conn;    /* used by the relay thread only */
	egr_proxy *egress;       /* the workers' egress proxy; NULL when it could not start */
	char egress_error[300];  /* why not */
	int64_t last_cleanup;
};

const char *spw_id(const spw_spawner *s)
{
	return s->id;
}

int spw_busy(spw_spawner *s)
{
	int n = 0;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->cfg.max_workers; i++)
		n += s->slots[i].busy;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* True when a failure is the item's own (the database refused this data:
 * a constraint, bad input, a trigger's exception), so trying the same item
 * again fails the same way; false for a server that is down, full or busy,
 * which is waited out. */
static int item_fault(int rc)
{
	if (rc == ERR_DB) {
		pg_errclass cls = pg_last_errclass();
		return cls == PG_ERRC_CONSTRAINT || cls == PG_ERRC_OTHER;
	}
	return rc == ERR_INVALID || rc == ERR_PARSE || rc == ERR_TOOBIG;
}

/* Repeats `fn` until it succeeds or the spawner stops, backing off: as long
 * as it takes while a server is down, but only POISON_ATTEMPTS times when
 * the failure is the item's own (item_fault). Returns its last code. */
static int persist(spw_spawner *s, const char *what, int (*fn)(void *), void *arg)
{
	int attempt = 0, own = 0, rc;

	for (;;) {
		rc = fn(arg);
		if (rc >= 0 || atomic_load(&s->stopping))
			return rc;
		if (item_fault(rc) && ++own >= POISON_ATTEMPTS) {
			log_error("spawner", "%s failed %d times for a reason of its own: %s", what, own,
				  err_last());
			return rc;
		}
		if (attempt == 0 || attempt % 10 == 0)
			log_warn("spawner", "%s failed (retrying): %s", what, err_last());
		util_sleep_ms(util_backoff_ms(attempt++, 100, 5000));
	}
}

/* Sets a worker's result (or request) that cannot be handled aside. */
static int dead_letter(spw_spawner *s, const char *source, const char *ref, const char *why,
		       const char *body)
{
	pg_conn *c = NULL;
	int rc = pg_pool_acquire(s->pool, 10000, &c);

	if (rc == 0) {
		rc = eng_dead_letter(c, source, ref, why, body, body ? strlen(body) : 0, NULL);
		pg_pool_release(s->pool, c);
	}
	if (rc < 0)
		log_error("spawner", "%s %s could not even be set aside: %s", source, ref, err_last());
	return rc;
}

/* --- finishing --- */

typedef struct fin {
	spw_spawner *s;
	rds_conn *conn;
	const char *entry;   /* "" when none */
	const char *id;
	int64_t thread_id;
	const json_t *result;
	char *text;
} fin;

static int fin_deliver(void *arg)
{
	fin *f = arg;
	pg_conn *c = NULL;
	char idem[SPW_ID_MAX + 8];
	int rc;

	if (!f->thread_id)
		return 0;
	snprintf(idem, sizeof(idem), "spawn:%s", f->id);
	rc = pg_pool_acquire(f->s->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = eng_deliver(c, f->thread_id, SPW_EVENT_KEY, f->result, idem, NULL, NULL);
	pg_pool_release(f->s->pool, c);
	if (rc == ERR_NOTFOUND) {
		log_warn("spawner", "worker %s: %s; the result is on %s only", f->id, err_last(),
			 SPW_RESULTS);
		return 0;
	}
	return rc;
}

static int fin_redis(void *arg)
{
	fin *f = arg;
	char marker[SPW_ID_MAX + 32];
	const char *argv[] = {"EVAL", FINISH_LUA, "3", SPW_RESULTS, SPW_STREAM, marker,
			      SPW_GROUP, f->entry, f->id, f->text, MARKER_TTL_S, RESULTS_MAXLEN};

	snprintf(marker, sizeof(marker), "orch:result:%s", f->id);
	return rds_cmdv(f->conn, NULL, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
}

/* The steps after the result is stored: to the thread, then to Redis with
 * the acknowledgement. Both idempotent. */
static int finish_entry(spw_spawner *s, rds_conn *conn, const char *entry, const char *id,
			int64_t thread_id, const json_t *result)
{
	fin f = {s, conn, entry ? entry : "", id, thread_id, result, NULL};
	int rc;

	f.text = json_dumps(result, JSON_COMPACT);
	if (!f.text)
		return err_set(ERR_NOMEM, "out of memory");
	rc = persist(s, "delivering a worker's result to its thread", fin_deliver, &f);
	if (rc < 0 && item_fault(rc) && !atomic_load(&s->stopping)) {
		/* its thread refuses it: set aside, and the rest goes on (the
		 * result is still stored and announced) */
		char why[1024];
		snprintf(why, sizeof(why), "delivering the result to thread %lld failed: %s",
			 (long long)thread_id, err_last());
		rc = dead_letter(s, ENG_DL_RESULT, id, why, f.text);
	}
	if (rc == 0)
		rc = persist(s, "announcing a worker's result on redis", fin_redis, &f);
	free(f.text);
	return rc;
}

/* --- the worker threads --- */

/* The first line of `text`, at most cap - 1 bytes, not cut inside a UTF-8
 * sequence. */
static void first_line(char *out, size_t cap, const char *text)
{
	size_t n = strcspn(text, "\n");

	if (n >= cap)
		for (n = cap - 1; n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80; n--)
			;
	memcpy(out, text, n);
	out[n] = '\0';
}

/* Records a status or action line as the worker's progress (best effort:
 * a busy or unreachable database skips it; the next line tries again). */
static void slot_progress(slot *sl, const char *kind, const char *text)
{
	pg_conn *c = NULL;
	char attempt[16];
	json_t *p;
	char *js;

	if (strcmp(kind, "action") == 0) {
		sl->prog_steps++;
		first_line(sl->prog_action, sizeof(sl->prog_action), text);
	} else {
		first_line(sl->prog_phase, sizeof(sl->prog_phase), text);
	}
	p = json_pack("{s:s, s:i, s:s, s:I}", "phase", sl->prog_phase, "step", sl->prog_steps,
		      "action", sl->prog_action, "at", (json_int_t)util_wall_ms());
	js = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	if (js && pg_pool_acquire(sl->s->pool, 1000, &c) == 0) {
		const char *params[4] = {sl->req.id, sl->s->id, attempt, js};

		snprintf(attempt, sizeof(attempt), "%d", sl->attempt);
		if (pg_exec_stmt(c, NULL, &STMT_PROGRESS, params) < 0)
			log_debug("spawner", "worker %s: progress not stored: %s", sl->req.id,
				  err_last());
		pg_pool_release(sl->s->pool, c);
	}
	err_clear();
	free(js);
}

static void slot_log(void *udata, const char *kind, const char *text)
{
	slot *sl = udata;
	char channel[SPW_ID_MAX + 16];
	json_t *j;
	char *line;

	if (strcmp(kind, "action") == 0 || strcmp(kind, "status") == 0)
		slot_progress(sl, kind, text);
	if (sl->s->cfg.hub && sl->req.thread_id > 0) {
		/* the project's thread streams its workers' steps */
		eng_stream_meta m = {.mode = ENG_STREAM_CUSTOM, .thread_id = sl->req.thread_id,
				     .run_id = sl->req.run_id, .thread_key = sl->req.project,
				     .node = "worker"};
		char *safe = redact_str(text);
		json_t *d = json_pack("{s:s,s:s,s:s,s:I}", "worker", sl->req.id, "kind", kind, "text",
				      safe ? safe : "", "t", (json_int_t)util_wall_ms());
		eng_stream_sink_emit(eng_stream_hub_sink(sl->s->cfg.hub), &m, d);
		json_decref(d);
		free(safe);
	}
	pthread_mutex_lock(&sl->log_mu);
	if (rds_broken(sl->conn) && util_mono_ms() - sl->log_fail_ms < LOG_RETRY_MS)
		goto done; /* live lines are best effort: no wait on a down server */
	j = json_pack("{s:I, s:s, s:s}", "t", (json_int_t)util_wall_ms(), "kind", kind, "text",
		      text);
	line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!line)
		goto done;
	snprintf(channel, sizeof(channel), "worker:log:%s", sl->req.id);
	if (rds_cmd(sl->conn, NULL, "PUBLISH", channel, line, NULL) < 0)
		sl->log_fail_ms = util_mono_ms();
	free(line);
done:
	pthread_mutex_unlock(&sl->log_mu);
}

typedef struct store_arg {
	spw_spawner *s;
	slot *sl;
	const char *status;
	const char *text;
	int stored;
} store_arg;

static int do_store(void *arg)
{
	store_arg *a = arg;
	pg_conn *c = NULL;
	char attempt[16];
	const char *params[5] = {a->sl->req.id, a->s->id, attempt, a->status, a->text};
	PGresult *res = NULL;
	int rc;

	snprintf(attempt, sizeof(attempt), "%d", a->sl->attempt);
	rc = pg_pool_acquire(a->s->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &res, &STMT_STORE, params);
	if (rc == 0)
		a->stored = pg_affected(res) == 1;
	PQclear(res);
	pg_pool_release(a->s->pool, c);
	return rc;
}

/* Stores a finished worker's result (do_store, persisted). A result the
 * database refuses for a reason of its own is set aside as a dead letter
 * and replaced by an "error" result that says so, which is stored and
 * delivered instead: the worker's requester always hears back, and the
 * entry is acknowledged. *result may be replaced (the caller owns it). */
static int store_or_set_aside(spw_spawner *s, slot *sl, store_arg *a, json_t **result)
{
	char why[1024], *text;
	json_t *plain;
	int rc = persist(s, "storing a worker's result", do_store, a);

	if (rc == 0 || !item_fault(rc) || atomic_load(&s->stopping))
		return rc;
	snprintf(why, sizeof(why), "its result could not be stored: %s", err_last());
	dead_letter(s, ENG_DL_RESULT, sl->req.id, why, a->text);
	plain = spw_result_base(&sl->req, sl->req.id, "error", why);
	text = plain ? json_dumps(plain, JSON_COMPACT) : NULL;
	if (!text) {
		json_decref(plain);
		return err_set(ERR_NOMEM, "out of memory");
	}
	a->status = "error";
	a->text = text;
	rc = persist(s, "storing a worker's result", do_store, a);
	a->text = NULL;
	free(text);
	if (rc == 0) {
		json_decref(*result);
		*result = plain;
	} else {
		json_decref(plain);
	}
	return rc;
}

static void release_lease(spw_spawner *s, slot *sl)
{
	pg_conn *c = NULL;
	char attempt[16];
	const char *params[3] = {sl->req.id, s->id, attempt};

	snprintf(attempt, sizeof(attempt), "%d", sl->attempt);
	if (pg_pool_acquire(s->pool, 5000, &c) < 0)
		return;
	pg_exec_stmt(c, NULL, &STMT_RELEASE, params);
	pg_pool_release(s->pool, c);
}

static void *worker_main(void *arg)
{
	slot *sl = arg;
	spw_spawner *s = sl->s;
	spw_worker_ctx w;
	json_t *result;
	const char *status;

	memset(&w, 0, sizeof(w));
	w.cfg = &s->cfg;
	w.pool = s->pool;
	w.llm = s->llm;
	w.spawner_id = s->id;
	w.req = &sl->req;
	w.attempt = sl->attempt;
	w.cancel = &sl->cancel;
	w.log = slot_log;
	w.log_udata = sl;
	w.egress = s->egress;
	w.egress_error = s->egress_error;
	w.phase = &sl->phase;
	result = spw_worker_run(&w);
	spw_phase_set(&sl->phase, SPW_PHASE_REPORTING);
	status = result ? json_string_value(json_object_get(result, "status")) : NULL;
	if (!result) {
		log_error("spawner", "worker %s: out of memory building its result", sl->req.id);
	} else if (atomic_load(&sl->fenced)) {
		log_warn("spawner", "worker %s: another spawner took it over; this run's result "
				    "is dropped", sl->req.id);
	} else if (status && strcmp(status, "cancelled") == 0 && !atomic_load(&sl->aborted)) {
		/* stopped, not finished: another spawner runs it again */
		release_lease(s, sl);
		log_info("spawner", "worker %s stopped with the spawner; it will run again",
			 sl->req.id);
	} else {
		store_arg a = {s, sl, status ? status : "error", NULL, 0};
		char *text;

		if (atomic_load(&sl->aborted) && status && strcmp(status, "cancelled") == 0)
			json_object_set_new(result, "reason",
					    json_string("cancelled by its requester (the project was "
							"cancelled)"));
		text = json_dumps(result, JSON_COMPACT);

		a.text = text;
		if (text && store_or_set_aside(s, sl, &a, &result) == 0) {
			if (a.stored)
				finish_entry(s, sl->conn, sl->entry, sl->req.id, sl->req.thread_id,
					     result);
			else
				log_warn("spawner", "worker %s: its lease was taken over; the result "
						    "is dropped", sl->req.id);
		}
		free(text);
		log_info("spawner", "worker %s (task %s): %s", sl->req.id, sl->req.task, a.status);
	}
	json_decref(result);
	spw_phase_set(&sl->phase, SPW_PHASE_IDLE);
	pthread_mutex_lock(&s->lock);
	sl->joinable = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Joins ended worker threads and frees their slots. */
static void reap(spw_spawner *s)
{
	for (int i = 0; i < s->cfg.max_workers; i++) {
		slot *sl = &s->slots[i];
		int join;

		pthread_mutex_lock(&s->lock);
		join = sl->busy && sl->joinable;
		pthread_mutex_unlock(&s->lock);
		if (!join)
			continue;
		pthread_join(sl->thread, NULL);
		pthread_mutex_lock(&s->lock);
		spw_request_free(&sl->req);
		sl->busy = 0;
		sl->joinable = 0;
		pthread_mutex_unlock(&s->lock);
	}
}

static int free_slots(spw_spawner *s)
{
	int n = 0;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->cfg.max_workers; i++)
		n += !s->slots[i].busy;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Takes over `req` (moved into a slot) for a new worker thread. On failure
 * `req` is left to the caller. */
static int start_worker(spw_spawner *s, spw_request *req, const char *entry, int attempt)
{
	slot *sl = NULL;
	int rc;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->cfg.max_workers && !sl; i++)
		if (!s->slots[i].busy)
			sl = &s->slots[i];
	if (sl) {
		sl->req = *req;
		memset(req, 0, sizeof(*req));
		snprintf(sl->entry, sizeof(sl->entry), "%s", entry);
		sl->attempt = attempt;
		sl->joinable = 0;
		sl->prog_steps = 0;
		sl->prog_phase[0] = sl->prog_action[0] = '\0';
		atomic_store(&sl->cancel, 0);
		atomic_store(&sl->fenced, 0);
		atomic_store(&sl->aborted, 0);
		sl->busy = 1;
	}
	if (sl)
		spw_phase_set(&sl->phase, SPW_PHASE_PREPARING);
	pthread_mutex_unlock(&s->lock);
	if (!sl)
		return err_set(ERR_BUSY, "no free worker slot");
	rc = sl->conn ? 0 : rds_connect(&sl->conn, s->cfg.redis_url, 1);
	if (rc < 0)
		goto fail;
	rds_set_cancel(sl->conn, &s->stopping);
	if (pthread_create(&sl->thread, NULL, worker_main, sl) != 0) {
		rc = err_set(ERR_IO, "cannot start a worker thread");
		goto fail;
	}
	log_info("spawner", "worker %s (task %s, attempt %d) started", sl->req.id, sl->req.task,
		 attempt);
	return 0;
fail:
	spw_phase_set(&sl->phase, SPW_PHASE_IDLE);
	pthread_mutex_lock(&s->lock);
	*req = sl->req;
	memset(&sl->req, 0, sizeof(sl->req));
	sl->busy = 0;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* --- the consumer --- */

/* The value of `field` in an entry's flat [f, v, f, v...] list, or NULL. */
static const rds_reply *entry_field(const rds_reply *fields, const char *field)
{
	for (size_t i = 0; fields && i + 1 < fields->n; i += 2)
		if (strcmp(rds_str(rds_at(fields, i)), field) == 0)
			return rds_at(fields, i + 1);
	return NULL;
}

/* Looks a worker row up. *state "" when there is none; *result owned. */
static int lookup(spw_spawner *s, const char *id, char *state, size_t cap, json_t **result,
		  int *live)
{
	pg_conn *c = NULL;
	PGresult *res = NULL;
	const char *params[1] = {id};
	int rc;

	state[0] = '\0';
	*result = NULL;
	*live = 0;
	rc = pg_pool_acquire(s->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &res, &STMT_LOOKUP, params);
	if (rc == 0 && pg_rows(res) == 1) {
		snprintf(state, cap, "%s", pg_val(res, 0, 0));
		if (!pg_isnull(res, 0, 1))
			*result = json_loads(pg_val(res, 0, 1), 0, NULL);
		*live = strcmp(pg_val(res, 0, 2), "t") == 0;
	}
	PQclear(res);
	pg_pool_release(s->pool, c);
	return rc;
}

/* A request id that already has a row: finish it again from the stored
 * result, or leave the entry pending while its worker runs elsewhere. */
static int handle_existing(spw_spawner *s, rds_conn *r, const char *entry, const char *id,
			   int64_t thread_id)
{
	char state[16];
	json_t *result = NULL;
	int live, rc;

	rc = lookup(s, id, state, sizeof(state), &result, &live);
	if (rc < 0)
		return rc;
	if (strcmp(state, "finished") == 0 && result) {
		int64_t tid = json_integer_value(json_object_get(result, "thread_id"));

		log_info("spawner", "request %s (entry %s) repeats a finished worker: its result "
				    "is announced again, no worker starts", id, entry);
		rc = finish_entry(s, r, entry, id, tid ? tid : thread_id, result);
	} else {
		log_info("spawner", "request %s (entry %s) repeats a worker that is running; the "
				    "entry stays pending until it ends", id, entry);
	}
	json_decref(result);
	return rc;
}

static int refuse_invalid(spw_spawner *s, rds_conn *r, const char *entry, const spw_request *req,
			  const char *id, const char *raw, size_t raw_len, const char *why)
{
	json_t *result = spw_result_base(req, id, "invalid", why), *rq = NULL;
	char *rtext = NULL, *qtext = NULL, *red = NULL;
	char tid[24], rid[24];
	const char *params[6];
	pg_conn *c = NULL;
	PGresult *res = NULL;
	int rc;

	if (!result)
		return err_set(ERR_NOMEM, "out of memory");
	json_object_set_new(result, "entry", json_string(entry));
	json_object_set_new(result, "spawner", json_string(s->id));
	{
		/* the raw request may hold any bytes: valid UTF-8 before JSON */
		buf clean;
		buf_init(&clean, 0);
		if (jx_utf8_lossy(&clean, raw ? raw : "", raw ? (raw_len > 4096 ? 4096 : raw_len)
							      : 0) == 0)
			red = redact_str(buf_cstr(&clean));
		buf_free(&clean);
	}
	rq = json_pack("{s:s}", "raw", red ? red : "");
	rtext = json_dumps(result, JSON_COMPACT);
	qtext = rq ? json_dumps(rq, JSON_COMPACT) : NULL;
	if (!rtext || !qtext) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	snprintf(tid, sizeof(tid), "%lld", (long long)req->thread_id);
	snprintf(rid, sizeof(rid), "%lld", (long long)req->run_id);
	params[0] = id;
	params[1] = req->thread_id ? tid : NULL;
	params[2] = req->run_id ? rid : NULL;
	params[3] = qtext;
	params[4] = rtext;
	params[5] = s->id;
	rc = pg_pool_acquire(s->pool, 10000, &c);
	if (rc < 0)
		goto done;
	rc = pg_exec_stmt(c, &res, &STMT_INVALID, params);
	pg_pool_release(s->pool, c);
	if (rc < 0)
		goto done;
	log_warn("spawner", "entry %s: invalid request %s: %s", entry, id, why);
	if (pg_affected(res) == 0) /* the id has a row already */
		rc = handle_existing(s, r, entry, id, req->thread_id);
	else
		rc = finish_entry(s, r, entry, id, req->thread_id, result);
done:
	PQclear(res);
	json_decref(result);
	json_decref(rq);
	free(rtext);
	free(qtext);
	free(red);
	return rc;
}

/* Claims a request's row: *attempt > 0 when this spawner runs it now. */
static int claim(spw_spawner *s, const spw_request *req, int *attempt)
{
	pg_conn *c = NULL;
	PGresult *res = NULL;
	json_t *rq = spw_request_json(req);
	char *rtext = rq ? json_dumps(rq, JSON_COMPACT) : NULL;
	char tid[24], rid[24], lease[24], dir[PATH_MAX];
	const char *params[9];
	int rc;

	*attempt = 0;
	json_decref(rq);
	if (!rtext)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(tid, sizeof(tid), "%lld", (long long)req->thread_id);
	snprintf(rid, sizeof(rid), "%lld", (long long)req->run_id);
	snprintf(lease, sizeof(lease), "%lld", (long long)s->cfg.claim_idle_ms);
	spw_worker_dir(&s->cfg, req->id, dir, sizeof(dir));
	params[0] = req->id;
	params[1] = req->task;
	params[2] = req->project;
	params[3] = req->thread_id ? tid : NULL;
	params[4] = req->run_id ? rid : NULL;
	params[5] = rtext;
	params[6] = s->id;
	params[7] = lease;
	params[8] = dir;
	rc = pg_pool_acquire(s->pool, 10000, &c);
	if (rc == 0) {
		rc = pg_exec_stmt(c, &res, &STMT_CLAIM, params);
		pg_pool_release(s->pool, c);
	}
	if (rc == 0 && pg_rows(res) == 1)
		*attempt = (int)pg_int(res, 0, 0);
	PQclear(res);
	free(rtext);
	return rc;
}

/* Gives up on a request whose spawners kept dying. */
static int give_up(spw_spawner *s, rds_conn *r, const char *entry, spw_request *req, int attempt)
{
	slot tmp;
	store_arg a;
	char reason[256];
	json_t *result;
	char *text;
	int rc;

	snprintf(reason, sizeof(reason), "gave up after %d attempts: the spawners running it died "
					 "(ORCH_SPAWN_MAX_ATTEMPTS is %d)", attempt - 1,
		 s->cfg.max_attempts);
	result = spw_result_base(req, req->id, "error", reason);
	text = result ? json_dumps(result, JSON_COMPACT) : NULL;
	if (!text) {
		json_decref(result);
		return err_set(ERR_NOMEM, "out of memory");
	}
	memset(&tmp, 0, sizeof(tmp));
	tmp.req = *req; /* borrowed view: not freed here */
	tmp.attempt = attempt;
	a.s = s;
	a.sl = &tmp;
	a.status = "error";
	a.text = text;
	a.stored = 0;
	rc = persist(s, "storing a worker's result", do_store, &a);
	if (rc == 0 && a.stored)
		rc = finish_entry(s, r, entry, req->id, req->thread_id, result);
	free(text);
	json_decref(result);
	return rc;
}

static int handle_entry(spw_spawner *s, rds_conn *r, const char *entry, const rds_reply *fields)
{
	const rds_reply *rq = entry_field(fields, "req");
	const rds_reply *idf = entry_field(fields, "id");
	spw_request req;
	int attempt = 0, rc;

	rc = spw_request_parse(rq ? rq->str : NULL, rq ? rq->len : 0, &req);
	if (rc < 0) {
		char why[1024], id[SPW_ID_MAX + 1];

		snprintf(why, sizeof(why), "%s", err_last());
		if (req.id[0])
			snprintf(id, sizeof(id), "%s", req.id);
		else if (idf && spw_id_check(rds_str(idf)) == 0)
			snprintf(id, sizeof(id), "%s", rds_str(idf));
		else
			snprintf(id, sizeof(id), "entry:%s", entry);
		rc = refuse_invalid(s, r, entry, &req, id, rq ? rq->str : NULL, rq ? rq->len : 0,
				    why);
		spw_request_free(&req);
		return rc;
	}
	rc = claim(s, &req, &attempt);
	if (rc < 0)
		goto done;
	if (attempt == 0) {
		rc = handle_existing(s, r, entry, req.id, req.thread_id);
	} else if (attempt > s->cfg.max_attempts) {
		log_error("spawner", "request %s: spawners died %d times running it; giving up",
			  req.id, attempt - 1);
		rc = give_up(s, r, entry, &req, attempt);
	} else {
		if (attempt > 1)
			log_warn("spawner", "request %s: its spawner died; running it again (attempt "
					    "%d)", req.id, attempt);
		rc = start_worker(s, &req, entry, attempt);
		if (rc < 0)
			release_lease(s, &(slot){.req = req, .attempt = attempt});
	}
done:
	spw_request_free(&req);
	return rc;
}

/* Entries whose handling failed for a reason of their own, and how often
 * (the consumer thread's; a spawner that restarts counts again). */
#define POISON_SLOTS 64
typedef struct poison {
	char entry[64];
	int fails;
} poison;

/* Counts a failure of entry `eid`; returns how many it has had. */
static int poison_count(poison *p, const char *eid)
{
	int free_slot = -1, oldest = 0;

	for (int i = 0; i < POISON_SLOTS; i++) {
		if (strcmp(p[i].entry, eid) == 0)
			return ++p[i].fails;
		if (!p[i].entry[0] && free_slot < 0)
			free_slot = i;
		if (p[i].fails < p[oldest].fails)
			oldest = i;
	}
	if (free_slot < 0)
		free_slot = oldest;
	snprintf(p[free_slot].entry, sizeof(p[free_slot].entry), "%s", eid);
	p[free_slot].fails = 1;
	return 1;
}

static void poison_forget(poison *p, const char *eid)
{
	for (int i = 0; i < POISON_SLOTS; i++)
		if (strcmp(p[i].entry, eid) == 0)
			memset(&p[i], 0, sizeof(p[i]));
}

/* Handles every entry of an [[id, [f, v, ...]], ...] list. An entry that
 * fails for a reason of its own POISON_ATTEMPTS times is set aside as a
 * dead letter and acknowledged, so it never blocks the entries behind it;
 * one that fails because a server is down stays pending and is tried again
 * when it is reclaimed. */
static void handle_entries(spw_spawner *s, rds_conn *r, const rds_reply *list, poison *bad)
{
	for (size_t i = 0; list && i < list->n && !atomic_load(&s->stopping); i++) {
		const rds_reply *e = rds_at(list, i);
		const char *eid = rds_str(rds_at(e, 0));
		const rds_reply *fields = rds_at(e, 1);
		int rc, n;

		if (!eid[0])
			continue;
		if (!fields || fields->type != RDS_ARR) {
			/* deleted from the stream while pending: nothing to run */
			rds_cmd(r, NULL, "XACK", SPW_STREAM, SPW_GROUP, eid, NULL);
			continue;
		}
		err_clear();
		rc = handle_entry(s, r, eid, fields);
		if (rc >= 0) {
			poison_forget(bad, eid);
			continue;
		}
		if (!item_fault(rc) || atomic_load(&s->stopping)) {
			log_warn("spawner", "entry %s: %s (it stays pending and is tried again)", eid,
				 err_last());
			continue;
		}
		n = poison_count(bad, eid);
		if (n < POISON_ATTEMPTS) {
			log_warn("spawner", "entry %s failed (%d of %d attempts before it is set aside): "
					    "%s",
				 eid, n, POISON_ATTEMPTS, err_last());
			continue;
		}
		{
			const rds_reply *rq = entry_field(fields, "req");
			char why[1024];

			snprintf(why, sizeof(why), "handling it failed %d times: %s", n, err_last());
			if (dead_letter(s, ENG_DL_SPAWN, eid, why, rq ? rds_str(rq) : NULL) == 0 &&
			    rds_cmd(r, NULL, "XACK", SPW_STREAM, SPW_GROUP, eid, NULL) == 0)
				poison_forget(bad, eid);
		}
	}
}

static int ensure_group(rds_conn *r)
{
	int rc = rds_cmd(r, NULL, "XGROUP", "CREATE", SPW_STREAM, SPW_GROUP, "0", "MKSTREAM", NULL);

	return rc == ERR_CONFLICT ? 0 : rc; /* BUSYGROUP: it exists */
}

static void *consumer_main(void *arg)
{
	spw_spawner *s = arg;
	rds_conn *r = NULL;
	char cursor[64] = "0-0";
	int64_t last_claim = 0;
	int group = 0, failures = 0;
	poison *bad = calloc(POISON_SLOTS, sizeof(*bad));

	if (!bad || rds_connect(&r, s->cfg.redis_url, 1) < 0) {
		log_error("spawner", "consumer: %s", bad ? err_last() : "out of memory");
		health_report("spawner.consumer", HEALTH_DOWN, "cannot start: %s",
			      bad ? err_last() : "out of memory");
		free(bad);
		return NULL;
	}
	health_report("spawner.consumer", HEALTH_OK, "reading %s", SPW_STREAM);
	rds_set_cancel(r, &s->stopping);
	rds_set_timeout(r, 15000);
	while (!atomic_load(&s->stopping)) {
		rds_reply *rep = NULL;
		char count[16], idle[24];
		int nfree, rc;

		reap(s);
		nfree = free_slots(s);
		if (!group) {
			rc = ensure_group(r);
			if (rc < 0) {
				health_report("spawner.consumer", HEALTH_DEGRADED,
					      "cannot reach the spawn stream (%d attempts): %s",
					      failures + 1, err_last());
				if (failures++ % 20 == 0)
					log_warn("spawner", "cannot reach the spawn stream: %s",
						 err_last());
				if (!rds_broken(r)) /* a broken one waits out its backoff */
					util_sleep_ms(util_backoff_ms(failures, 100, 5000));
				continue;
			}
			group = 1;
		}
		if (nfree == 0) {
			struct timespec ts;

			pthread_mutex_lock(&s->lock);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		snprintf(count, sizeof(count), "%d", nfree);
		/* entries of dead spawners, scanned in passes */
		if (util_mono_ms() - last_claim >= s->cfg.claim_idle_ms / 2 ||
		    strcmp(cursor, "0-0") != 0) {
			snprintf(idle, sizeof(idle), "%lld", (long long)s->cfg.claim_idle_ms);
			rc = rds_cmd(r, &rep, "XAUTOCLAIM", SPW_STREAM, SPW_GROUP, s->id, idle, cursor,
				     "COUNT", count, NULL);
			if (rc == 0) {
				const rds_reply *gone = rds_at(rep, 2);

				snprintf(cursor, sizeof(cursor), "%s", rds_str(rds_at(rep, 0)));
				if (!cursor[0])
					snprintf(cursor, sizeof(cursor), "0-0");
				if (strcmp(cursor, "0-0") == 0)
					last_claim = util_mono_ms();
				if (rds_at(rep, 1) && rds_at(rep, 1)->n)
					log_info("spawner", "reclaimed %zu pending entries",
						 rds_at(rep, 1)->n);
				handle_entries(s, r, rds_at(rep, 1), bad);
				for (size_t i = 0; gone && i < gone->n; i++)
					rds_cmd(r, NULL, "XACK", SPW_STREAM, SPW_GROUP,
						rds_str(rds_at(gone, i)), NULL);
				rds_reply_free(rep);
				rep = NULL;
				if (failures > 0)
					health_report("spawner.consumer", HEALTH_OK, "reading %s",
						      SPW_STREAM);
				failures = 0;
				continue; /* take new entries with what is left */
			}
			goto fail;
		}
		rc = rds_cmd(r, &rep, "XREADGROUP", "GROUP", SPW_GROUP, s->id, "COUNT", count, "BLOCK",
			     "1000", "STREAMS", SPW_STREAM, ">", NULL);
		if (rc == 0) {
			const rds_reply *stream = rds_at(rep, 0);

			handle_entries(s, r, rds_at(stream, 1), bad);
			rds_reply_free(rep);
			if (failures > 0)
				health_report("spawner.consumer", HEALTH_OK, "reading %s", SPW_STREAM);
			failures = 0;
			continue;
		}
fail:
		rds_reply_free(rep);
		if (rc != ERR_CANCELLED)
			health_report("spawner.consumer", HEALTH_DEGRADED,
				      "reading the spawn stream failed (%d times in a row): %s",
				      failures + 1, err_last());
		if (rc == ERR_NOTFOUND) /* NOGROUP: the server lost the group */
			group = 0;
		if (rc != ERR_CANCELLED && failures++ % 20 == 0)
			log_warn("spawner", "reading the spawn stream: %s", err_last());
		if (!rds_broken(r))
			util_sleep_ms(util_backoff_ms(failures, 100, 5000));
	}
	rds_free(r);
	free(bad);
	return NULL;
}

/* --- heartbeats and the janitor --- */

static void trim_stream(rds_conn *r)
{
	rds_reply *groups = NULL, *pend = NULL;
	char minid[64] = "";

	if (rds_cmd(r, &groups, "XINFO", "GROUPS", SPW_STREAM, NULL) < 0 || groups->n != 1)
		goto done; /* only when the spawners' group is the stream's only reader */
	{
		const rds_reply *g = rds_at(groups, 0);
		long long pending = rds_int(entry_field(g, "pending"), -1);
		const char *last = rds_str(entry_field(g, "last-delivered-id"));

		if (strcmp(rds_str(entry_field(g, "name")), SPW_GROUP) != 0 || pending < 0)
			goto done;
		if (pending == 0) {
			snprintf(minid, sizeof(minid), "%s", last);
		} else if (rds_cmd(r, &pend, "XPENDING", SPW_STREAM, SPW_GROUP, "-", "+", "1",
				   NULL) == 0) {
			snprintf(minid, sizeof(minid), "%s", rds_str(rds_at(rds_at(pend, 0), 0)));
		}
	}
	if (minid[0] && strcmp(minid, "0-0") != 0)
		rds_cmd(r, NULL, "XTRIM", SPW_STREAM, "MINID", minid, NULL);
done:
	rds_reply_free(groups);
	rds_reply_free(pend);
}

static void heartbeat(spw_spawner *s, rds_conn *r)
{
	int failed = 0;
	char why[512] = "";

	for (int i = 0; i < s->cfg.max_workers; i++) {
		slot *sl = &s->slots[i];
		char id[SPW_ID_MAX + 1], entry[64], attempt[16], lease[24];
		const char *params[4] = {id, s->id, attempt, lease};
		pg_conn *c = NULL;
		PGresult *res = NULL;
		int busy;

		pthread_mutex_lock(&s->lock);
		busy = sl->busy && !sl->joinable;
		if (busy) {
			snprintf(id, sizeof(id), "%s", sl->req.id);
			snprintf(entry, sizeof(entry), "%s", sl->entry);
			snprintf(attempt, sizeof(attempt), "%d", sl->attempt);
		}
		pthread_mutex_unlock(&s->lock);
		if (!busy)
			continue;
		snprintf(lease, sizeof(lease), "%lld", (long long)s->cfg.claim_idle_ms);
		if (pg_pool_acquire(s->pool, 5000, &c) < 0) {
			failed++;
			snprintf(why, sizeof(why), "%s", err_last());
		} else {
			int rrc = pg_exec_stmt(c, &res, &STMT_RENEW, params);
			if (rrc < 0) {
				failed++;
				snprintf(why, sizeof(why), "%s", err_last());
			} else if (pg_rows(res) == 0) {
				log_warn("spawner", "worker %s: its lease was taken over; stopping it",
					 id);
				atomic_store(&sl->fenced, 1);
				atomic_store(&sl->cancel, 1);
			} else if (pg_rows(res) == 1 && strcmp(pg_val(res, 0, 0), "t") == 0 &&
				   !atomic_load(&sl->aborted)) {
				log_info("spawner", "worker %s: cancelled by its requester; stopping it",
					 id);
				atomic_store(&sl->aborted, 1);
				atomic_store(&sl->cancel, 1);
			}
			PQclear(res);
			pg_pool_release(s->pool, c);
		}
		/* reset the entry's idle time, so no live worker's entry is reclaimed */
		if (rds_cmd(r, NULL, "XCLAIM", SPW_STREAM, SPW_GROUP, s->id, "0", entry, "JUSTID",
			    NULL) < 0) {
			failed++;
			snprintf(why, sizeof(why), "%s", err_last());
		}
	}
	if (failed)
		health_report("spawner.heartbeat", HEALTH_DEGRADED,
			      "cannot renew %d of its workers' leases (they are reclaimed after "
			      "%lld ms without one): %s",
			      failed, (long long)s->cfg.claim_idle_ms, why);
	else
		health_report("spawner.heartbeat", HEALTH_OK, "renewing leases");
}

static void *heart_main(void *arg)
{
	spw_spawner *s = arg;
	rds_conn *r = NULL;
	int64_t period = s->cfg.claim_idle_ms / 3, last_sweep = util_mono_ms();

	if (rds_connect(&r, s->cfg.redis_url, 1) < 0) {
		log_error("spawner", "heartbeat: %s", err_last());
		health_report("spawner.heartbeat", HEALTH_DOWN, "cannot start: %s", err_last());
		return NULL;
	}
	rds_set_cancel(r, &s->stopping);
	while (!atomic_load(&s->stopping)) {
		int64_t next = util_mono_ms() + period;

		heartbeat(s, r);
		if (util_mono_ms() - s->last_cleanup >= s->cfg.cleanup_ms) {
			s->last_cleanup = util_mono_ms();
			spw_cleanup(s, NULL);
			trim_stream(r);
		}
		while (!atomic_load(&s->stopping) && util_mono_ms() < next) {
			/* the cgroups of a sandbox whose owner was killed go within
			 * seconds, not at the next janitor's pass */
			if (util_mono_ms() - last_sweep >= SWEEP_EVERY_MS) {
				last_sweep = util_mono_ms();
				sbx_sweep(NULL);
				err_clear();
			}
			util_sleep_ms(50);
		}
	}
	rds_free(r);
	return NULL;
}

/* The pull requests' poller (change.c): what people write on the pull
 * requests the factory opened, and what CI reports, to their projects. */
static void *forge_main(void *arg)
{
	spw_spawner *s = arg;
	int64_t period = s->cfg.forge_poll_ms / 2;
	int failing = 0;

	period = period < 200 ? 200 : period > 5000 ? 5000 : period;
	while (!atomic_load(&s->stopping)) {
		int64_t next = util_mono_ms() + period;

		if (spw_forge_poll(s->pool, &s->cfg, NULL) < 0) {
			if (!failing++)
				log_warn("spawner", "reading the pull requests: %s", err_last());
		} else {
			failing = 0;
		}
		while (!atomic_load(&s->stopping) && util_mono_ms() < next)
			util_sleep_ms(50);
	}
	return NULL;
}

int spw_cleanup(spw_spawner *s, int *out_removed)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int removed = 0, swept = 0;

	if (out_removed)
		*out_removed = 0;
	if (sbx_sweep(&swept) < 0)
		log_warn("spawner", "sweeping dead sandboxes: %s", err_last());
	if (strcmp(s->cfg.sandbox, "docker") == 0) {
		int containers = 0;
		if (sbx_sweep_docker(NULL, &containers) < 0)
			log_warn("spawner", "sweeping the Docker engine's leftover sandboxes: %s", err_last());
		swept += containers;
	}
	snprintf(path, sizeof(path), "%s/workers", s->cfg.data_dir);
	d = opendir(path);
	if (!d)
		return 0;
	for (e = readdir(d); e; e = readdir(d)) {
		char state[16], dir[PATH_MAX];
		json_t *result = NULL;
		int live = 0, mine = 0;

		if (e->d_name[0] == '.' || spw_id_check(e->d_name) < 0)
			continue;
		pthread_mutex_lock(&s->lock);
		for (int i = 0; i < s->cfg.max_workers; i++)
			if (s->slots[i].busy && strcmp(s->slots[i].req.id, e->d_name) == 0)
				mine = 1;
		pthread_mutex_unlock(&s->lock);
		if (mine)
			continue;
		if (lookup(s, e->d_name, state, sizeof(state), &result, &live) < 0)
			continue; /* the database decides; without it, keep everything */
		json_decref(result);
		if (strcmp(state, "running") == 0 && live)
			continue; /* another spawner on this host runs it */
		snprintf(dir, sizeof(dir), "%s/%s", path, e->d_name);
		if (spw_remove_worker_dir(dir) < 0)
			log_warn("spawner", "cleanup: %s", err_last());
		else
			removed++;
	}
	closedir(d);
	if (removed || swept)
		log_info("spawner", "cleanup: %d workspaces and %d sandbox cgroups of finished or "
				    "dead workers removed", removed, swept);
	if (out_removed)
		*out_removed = removed;
	return 0;
}

/* --- the outbox relay --- */

static int relay_fn(const eng_outbox_row *row, json_t **result, int64_t *retry_after_ms,
		    void *udata)
{
	spw_spawner *s = udata;
	json_t *req;
	char id[SPW_ID_MAX + 1], *text = NULL;
	rds_reply *rep = NULL;
	int rc;

	(void)retry_after_ms;
	snprintf(id, sizeof(id), "ob-%lld", (long long)row->id);
	if (json_is_object(row->payload)) {
		const char *own = json_string_value(json_object_get(row->payload, "id"));

		/* a producer that names its request (deterministically) keeps the name */
		if (own && spw_id_check(own) == 0)
			snprintf(id, sizeof(id), "%s", own);
		err_clear();
		req = json_deep_copy(row->payload);
	} else {
		/* still sent: the spawner's refusal reaches the thread that asked */
		req = json_object();
		if (req)
			json_object_set(req, "payload", row->payload ? row->payload : json_null());
	}
	if (!req)
		return err_set(ERR_NOMEM, "out of memory");
	json_object_set_new(req, "id", json_string(id));
	if (row->thread_id)
		json_object_set_new(req, "thread_id", json_integer(row->thread_id));
	if (row->run_id)
		json_object_set_new(req, "run_id", json_integer(row->run_id));
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return err_set(ERR_NOMEM, "out of memory");
	rc = rds_cmd(s->relay_conn, &rep, "XADD", SPW_STREAM, "*", "id", id, "req", text, NULL);
	if (rc == 0)
		*result = json_pack("{s:s, s:s}", "stream", SPW_STREAM, "entry", rds_str(rep));
	rds_reply_free(rep);
	free(text);
	return rc == ERR_INVALID ? ERR_REDIS : rc; /* a refused XADD is the server's, retry */
}

static const pg_stmt STMT_CANCEL_THREAD = {
	"spw_cancel_thread",
	"SELECT spawn_cancel_thread($1::bigint, $2)",
	2,
};

int spw_cancel_thread(pg_conn *c, int64_t thread_id, const char *reason, int *out_n)
{
	char tid[24];
	const char *params[2] = {tid, reason ? reason : "cancelled"};
	PGresult *res = NULL;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &res, &STMT_CANCEL_THREAD, params);
	if (rc == 0 && out_n)
		*out_n = (int)pg_int(res, 0, 0);
	PQclear(res);
	return rc;
}

/* --- life cycle --- */

int spw_new(spw_spawner **out, const spw_config *cfg, pg_pool *pool, llm_service *llm)
{
	spw_spawner *s;
	char host[64], rnd[9];
	int rc;

	*out = NULL;
	if (!cfg || !pool || !llm || cfg->max_workers < 1)
		return err_set(ERR_INVALID, "a spawner needs a configuration, a database and models");
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	s->cfg = *cfg;
	s->pool = pool;
	s->llm = llm;
	s->slots = calloc((size_t)cfg->max_workers, sizeof(*s->slots));
	if (!s->slots) {
		free(s);
		return err_set(ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < cfg->max_workers; i++) {
		s->slots[i].s = s;
		pthread_mutex_init(&s->slots[i].log_mu, NULL);
		atomic_init(&s->slots[i].phase, SPW_PHASE_IDLE);
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	util_rand_hex(rnd, 4);
	snprintf(s->id, sizeof(s->id), "%s-%d-%s", host, (int)getpid(), rnd);
	rc = gitx_init();
	if (rc == 0)
		rc = rds_url_parse(cfg->redis_url, &(rds_url){0});
	if (rc < 0) {
		spw_free(s);
		return rc;
	}
	{
		/* one egress proxy for every worker; workers without network need none */
		egr_config ec;
		char dir[160];
		int made = 0;

		memset(&ec, 0, sizeof(ec));
		ec.max_conns = cfg->net_max_conns;
		ec.max_bytes = cfg->net_max_bytes;
		if (cfg->net_socket_dir[0]) {
			/* a folder per spawner: spawners in containers share it
			 * (their pids may be the same) */
			util_rand_hex(rnd, 4);
			snprintf(dir, sizeof(dir), "%s/%d-%s", cfg->net_socket_dir, (int)getpid(), rnd);
			ec.dir = dir;
			made = mkdir(cfg->net_socket_dir, 0711) == 0 || errno == EEXIST;
		}
		if (ec.dir && !made) {
			snprintf(s->egress_error, sizeof(s->egress_error),
				 "cannot create ORCH_NET_SOCKET_DIR %s: %s", cfg->net_socket_dir,
				 strerror(errno));
			health_report("spawner.egress", HEALTH_DEGRADED,
				      "the egress proxy could not start: %s (workers get no network)",
				      s->egress_error);
		} else if (egr_new(&s->egress, &ec) < 0) {
			snprintf(s->egress_error, sizeof(s->egress_error), "%s", err_last());
			health_report("spawner.egress", HEALTH_DEGRADED,
				      "the egress proxy could not start: %s (workers get no network)",
				      s->egress_error);
			err_clear();
		} else {
			health_report("spawner.egress", HEALTH_OK, NULL);
		}
	}
	*out = s;
	return 0;
}

int spw_start(spw_spawner *s)
{
	int rc;

	if (s->started)
		return 0;
	atomic_store(&s->stopping, 0);
	spw_cleanup(s, NULL);
	s->last_cleanup = util_mono_ms();
	if (s->cfg.relay && !s->relay) {
		eng_relay_options ro;

		memset(&ro, 0, sizeof(ro));
		ro.name = "spawn-relay";
		ro.kinds = "{" SPW_OUTBOX_KIND "}";
		rc = rds_connect(&s->relay_conn, s->cfg.redis_url, 1);
		if (rc < 0)
			return rc;
		rds_set_cancel(s->relay_conn, &s->stopping);
		rc = eng_relay_new(&s->relay, s->pool, &ro, relay_fn, s);
		if (rc < 0)
			return rc;
	}
	/* a spawner stopped before starts its relay again */
	rc = s->relay ? eng_relay_start(s->relay) : 0;
	if (rc < 0)
		return rc;
	if (pthread_create(&s->consumer, NULL, consumer_main, s) != 0)
		return err_set(ERR_IO, "cannot start the spawner's consumer thread");
	if (pthread_create(&s->heart, NULL, heart_main, s) != 0) {
		atomic_store(&s->stopping, 1);
		pthread_join(s->consumer, NULL);
		return err_set(ERR_IO, "cannot start the spawner's heartbeat thread");
	}
	s->started = 1;
	if (s->cfg.forge_poll_ms > 0 && pthread_create(&s->forge, NULL, forge_main, s) == 0)
		s->forge_started = 1;
	log_info("spawner", "spawner %s: up to %d workers, reclaiming after %lld ms", s->id,
		 s->cfg.max_workers, (long long)s->cfg.claim_idle_ms);
	return 0;
}

void spw_stop(spw_spawner *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, 1);
	for (int i = 0; i < s->cfg.max_workers; i++)
		atomic_store(&s->slots[i].cancel, 1);
	if (s->relay)
		eng_relay_stop(s->relay);
	if (s->started) {
		pthread_join(s->consumer, NULL);
		pthread_join(s->heart, NULL);
		s->started = 0;
		health_forget("spawner.consumer"); /* stopped on purpose */
		health_forget("spawner.heartbeat");
	}
	if (s->forge_started) {
		pthread_join(s->forge, NULL);
		s->forge_started = 0;
	}
	for (int i = 0; i < s->cfg.max_workers; i++) {
		slot *sl = &s->slots[i];
		int busy;

		pthread_mutex_lock(&s->lock);
		busy = sl->busy;
		pthread_mutex_unlock(&s->lock);
		if (busy) {
			pthread_join(sl->thread, NULL);
			spw_request_free(&sl->req);
			sl->busy = 0;
			sl->joinable = 0;
		}
	}
}

void spw_free(spw_spawner *s)
{
	if (!s)
		return;
	spw_stop(s);
	eng_relay_free(s->relay);
	rds_free(s->relay_conn);
	egr_free(s->egress);
	for (int i = 0; i < s->cfg.max_workers; i++) {
		rds_free(s->slots[i].conn);
		pthread_mutex_destroy(&s->slots[i].log_mu);
	}
	free(s->slots);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}
