/*
 * orchestrator secrets init|set|list|rm|rotate-key|verify — the encrypted
 * secrets store (secrets/store.h). Values are read from standard input,
 * never from the command line, and never printed.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "secrets/key.h"
#include "secrets/redact.h"
#include "secrets/store.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator secrets <action> [options]\n"
	"  init                       create the master key (ORCH_MASTER_KEY_FILE, default\n"
	"                             $ORCH_DATA_DIR/master.key, mode 0600) or record the one in\n"
	"                             ORCH_MASTER_KEY; safe to run again\n"
	"  set NAME [--scope PROJECT | --global]\n"
	"                             store a secret; the value is read from standard input\n"
	"                             (one trailing newline is dropped; typed without echo on a\n"
	"                             terminal). --scope: only that project may be granted it\n"
	"  list [--json]              names, scopes, handles, created and last used; never values\n"
	"  rm NAME [--revoke-handles] remove a secret (refused while live handles use it)\n"
	"  rotate-key [--new-key-stdin]\n"
	"                             re-encrypt every secret under a new master key, in one\n"
	"                             transaction; with ORCH_MASTER_KEY give the new key on stdin\n"
	"  verify                     check the master key and that every secret decrypts\n"
	"Handles for workers: see 'orchestrator resources --help'.";

static int load_src(sec_keysrc *src)
{
	if (sec_keysrc_from_env(src, cli_cfg.data_dir) < 0) {
		cli_fail("secrets");
		return -1;
	}
	return 0;
}

/* Opens the database and the store; prints the reason on failure. */
static int open_store(pg_conn **c, sec_store **s)
{
	sec_keysrc src;

	if (load_src(&src) < 0)
		return -1;
	*c = cli_db();
	if (!*c)
		return -1;
	if (sec_store_open(s, *c, &src) < 0) {
		cli_fail("secrets");
		pg_conn_close(*c);
		*c = NULL;
		return -1;
	}
	return 0;
}

/* Reads all of standard input (at most `max` bytes) into locked memory.
 * On a terminal, asks for the value with echo off. *out: sec_value_free. */
static int read_stdin_value(const char *prompt, size_t max, char **out, size_t *out_len)
{
	struct termios old, quiet;
	int tty = isatty(0), echo_off = 0, rc = 0;
	char *v = sec_value_alloc(max + 1);
	size_t n = 0;

	if (!v)
		return err_set(ERR_NOMEM, "out of memory");
	if (tty && tcgetattr(0, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		if (tcsetattr(0, TCSAFLUSH, &quiet) == 0)
			echo_off = 1;
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
	}
	for (;;) {
		ssize_t r;
		if (n > max) {
			rc = err_set(ERR_TOOBIG, "the value on standard input is longer than %zu bytes",
				     max);
			break;
		}
		r = read(0, v + n, max + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(ERR_IO, "cannot read standard input: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		/* a person at a terminal ends the value with Enter */
		if (tty && n > 0 && v[n - 1] == '\n')
			break;
	}
	if (echo_off) {
		tcsetattr(0, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (rc < 0) {
		sec_value_free(v);
		return rc;
	}
	if (n > 0 && v[n - 1] == '\n')
		n--;
	if (n > 0 && v[n - 1] == '\r')
		n--;
	sodium_memzero(v + n, max + 1 - n);
	*out = v;
	*out_len = n;
	return 0;
}

static int do_init(int argc, char **argv)
{
	char actor[SEC_ACTOR_MAX + 1];
	sec_keysrc src;
	sec_init_report rep;
	pg_conn *c;
	int rc;

	(void)argv;
	if (argc > 1)
		return cli_usage("orchestrator secrets init");
	if (load_src(&src) < 0)
		return 1;
	c = cli_db();
	if (!c)
		return 1;
	cli_actor(actor, sizeof(actor));
	rc = sec_store_init(c, &src, actor, &rep);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("secrets init");
	if (rep.created_file)
		printf("created the master key in %s (mode 0600)\n"
		       "back it up somewhere safe: without it no secret can be read again\n",
		       rep.where);
	if (rep.recorded)
		printf("secrets are set up: the database now recognises the master key from %s\n",
		       rep.where);
	else
		printf("secrets were set up already: the master key from %s is the right one\n",
		       rep.where);
	return 0;
}

static int do_set(int argc, char **argv)
{
	const char *name = NULL, *scope = NULL;
	char actor[SEC_ACTOR_MAX + 1], prompt[SEC_NAME_MAX + 64];
	char *value = NULL;
	size_t len = 0;
	pg_conn *c = NULL;
	sec_store *s = NULL;
	int created = 0, rc = 1;

	for (int i = 1; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "--scope", &scope))
			continue;
		if (cli_flag(argv, i, "--global")) {
			scope = "";
			continue;
		}
		if (argv[i][0] != '-' && !name) {
			name = argv[i];
			continue;
		}
		if (argv[i][0] != '-') {
			fprintf(stderr,
				"orchestrator: secrets set: nothing was stored: a value is never taken "
				"from the command line (shell history and ps would show it); pipe it "
				"in: printf %%s \"$VALUE\" | orchestrator secrets set %s. If that "
				"argument was a real secret, consider it exposed and replace it.\n",
				name);
			return 2;
		}
		return cli_usage("orchestrator secrets set NAME [--scope PROJECT | --global] < value");
	}
	if (!name)
		return cli_usage("orchestrator secrets set NAME [--scope PROJECT | --global] < value");
	if (sec_name_check(name) < 0 || (scope && *scope && sec_scope_check(scope) < 0))
		return cli_fail("secrets set");
	/* check the key before asking for the value */
	if (open_store(&c, &s) < 0)
		return 1;
	snprintf(prompt, sizeof(prompt), "value of %s (not shown): ", name);
	if (read_stdin_value(prompt, SEC_VALUE_MAX, &value, &len) < 0) {
		cli_fail("secrets set");
		goto done;
	}
	if (len == 0) {
		fprintf(stderr, "orchestrator: secrets set: no value on standard input; pipe it in, "
				"e.g. printf %%s \"$TOKEN\" | orchestrator secrets set %s\n",
			name);
		goto done;
	}
	cli_actor(actor, sizeof(actor));
	if (sec_store_set(s, c, name, scope, value, len, actor, &created) < 0) {
		cli_fail("secrets set");
		goto done;
	}
	printf("%s secret %s (%zu bytes, sealed)\n", created ? "stored" : "replaced the value of",
	       name, len);
	rc = 0;
done:
	sec_value_free(value);
	sec_store_free(s);
	pg_conn_close(c);
	return rc;
}

static int do_list(int argc, char **argv)
{
	int as_json = 0;
	sec_secret_info *v = NULL;
	size_t n = 0;
	pg_conn *c;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--json")) {
			as_json = 1;
			continue;
		}
		return cli_usage("orchestrator secrets list [--json]");
	}
	c = cli_db();
	if (!c)
		return 1;
	rc = sec_store_list(c, &v, &n);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("secrets list");
	if (as_json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			char cr[32], up[32], lu[32];
			cli_fmt_time(v[i].created_ms, cr, sizeof(cr));
			cli_fmt_time(v[i].updated_ms, up, sizeof(up));
			cli_fmt_time(v[i].last_used_ms, lu, sizeof(lu));
			json_array_append_new(
				arr, json_pack("{s:s, s:s?, s:s, s:s, s:s?, s:I, s:i}", "name", v[i].name,
					       "scope", v[i].scope[0] ? v[i].scope : NULL, "created", cr,
					       "updated", up, "last_used",
					       v[i].last_used_ms ? lu : NULL, "uses",
					       (json_int_t)v[i].uses, "handles", v[i].handles));
		}
		cli_print_json(arr);
		json_decref(arr);
	} else if (n == 0) {
		printf("no secrets ('orchestrator secrets set NAME' stores one)\n");
	} else {
		printf("%-32s %-20s %7s  %-20s  %-20s\n", "NAME", "SCOPE", "HANDLES", "CREATED",
		       "LAST USED");
		for (size_t i = 0; i < n; i++) {
			char cr[32], lu[32];
			cli_fmt_time(v[i].created_ms, cr, sizeof(cr));
			cli_fmt_time(v[i].last_used_ms, lu, sizeof(lu));
			printf("%-32s %-20s %7d  %-20s  %-20s\n", v[i].name,
			       v[i].scope[0] ? v[i].scope : "(any project)", v[i].handles, cr, lu);
		}
	}
	free(v);
	return 0;
}

static int do_rm(int argc, char **argv)
{
	const char *name = NULL;
	char actor[SEC_ACTOR_MAX + 1];
	int revoke = 0, revoked = 0;
	pg_conn *c;
	int rc;

	rc = cli_name_args(argc, argv, "orchestrator secrets rm NAME [--revoke-handles]",
			   "--revoke-handles", &revoke, &name);
	if (rc >= 0)
		return rc;
	c = cli_db();
	if (!c)
		return 1;
	cli_actor(actor, sizeof(actor));
	rc = sec_store_rm(c, name, revoke, actor, &revoked);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("secrets rm");
	if (revoked)
		printf("removed secret %s and revoked its %d handle%s\n", name, revoked,
		       revoked == 1 ? "" : "s");
	else
		printf("removed secret %s\n", name);
	return 0;
}

static int do_rotate(int argc, char **argv)
{
	int from_stdin = 0, rc = 1;
	char actor[SEC_ACTOR_MAX + 1];
	sec_rotate_report rep;
	sec_key *nk = NULL;
	pg_conn *c = NULL;
	sec_store *s = NULL;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--new-key-stdin")) {
			from_stdin = 1;
			continue;
		}
		return cli_usage("orchestrator secrets rotate-key [--new-key-stdin]");
	}
	if (open_store(&c, &s) < 0)
		return 1;
	if (from_stdin) {
		char *text = NULL;
		size_t len = 0;
		int prc = read_stdin_value("new master key (not shown): ", 512, &text, &len);
		if (prc == 0)
			prc = sec_key_parse(&nk, text, len, "the new key on standard input");
		sec_value_free(text);
		if (prc < 0) {
			cli_fail("secrets rotate-key");
			goto done;
		}
	}
	cli_actor(actor, sizeof(actor));
	if (sec_store_rotate(s, c, nk, actor, &rep) < 0) {
		nk = NULL; /* taken over */
		cli_fail("secrets rotate-key");
		goto done;
	}
	nk = NULL;
	printf("rotated the master key to version %d: %d secret%s re-encrypted; the new key is "
	       "in %s\n",
	       rep.version, rep.secrets, rep.secrets == 1 ? "" : "s", rep.where);
	printf("back up the new key; the old one opens nothing any more. Processes that read a "
	       "key file reload it by themselves; those given ORCH_MASTER_KEY need a restart.\n");
	rc = 0;
done:
	sec_key_free(nk);
	sec_store_free(s);
	pg_conn_close(c);
	return rc;
}

typedef struct verify_count {
	int ok, bad;
} verify_count;

static int verify_one(const char *name, const char *value, size_t len, void *udata)
{
	verify_count *vc = udata;

	(void)name;
	(void)len;
	if (value) {
		vc->ok++;
	} else {
		vc->bad++;
		fprintf(stderr, "orchestrator: %s\n", err_last());
	}
	return 0;
}

static int do_verify(int argc, char **argv)
{
	verify_count vc = {0, 0};
	pg_conn *c = NULL;
	sec_store *s = NULL;
	int rc;

	(void)argv;
	if (argc > 1)
		return cli_usage("orchestrator secrets verify");
	if (open_store(&c, &s) < 0)
		return 1;
	rc = sec_store_foreach(s, c, verify_one, &vc);
	if (rc < 0)
		cli_fail("secrets verify");
	else if (vc.bad)
		printf("%d secret%s decrypt, %d failed the integrity check (set them again)\n",
		       vc.ok, vc.ok == 1 ? "" : "s", vc.bad);
	else
		printf("the master key from %s is right and all %d secret%s decrypt\n",
		       sec_store_key_where(s), vc.ok, vc.ok == 1 ? "" : "s");
	sec_store_free(s);
	pg_conn_close(c);
	return rc < 0 || vc.bad ? 1 : 0;
}

int cmd_secrets(int argc, char **argv)
{
	static const cli_action actions[] = {
		{"init", NULL, do_init},
		{"set", NULL, do_set},
		{"list", "ls", do_list},
		{"rm", NULL, do_rm},
		{"rotate-key", NULL, do_rotate},
		{"verify", NULL, do_verify},
		{NULL, NULL, NULL},
	};

	/* values this process reads never reach its own log lines */
	sec_redact_install();
	return cli_actions(argc, argv, "secrets", USAGE, actions);
}
