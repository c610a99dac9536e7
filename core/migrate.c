#include "core/migrate.h"
#include "core/buf.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/pg.h"
#include "core/utf8.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* "orch" + "migr" as one advisory lock key */
#define MIG_LOCK_KEY "7990488010306185074"
#define MIG_MAX 512

typedef struct mig_file {
	int version;
	char name[128]; /* file name without the folder */
	char *sql;      /* owned */
	char sum[65];
} mig_file;

static void files_free(mig_file *f, int n)
{
	for (int i = 0; i < n; i++)
		free(f[i].sql);
	free(f);
}

/* Parses "NNN_name.sql" into its version; -1 when it is not such a name. */
static int parse_name(const char *base)
{
	const char *p = base;
	long v = 0;
	size_t len = strlen(base);

	if (len < 6 || strcmp(base + len - 4, ".sql") != 0)
		return -1;
	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (*p - '0');
		if (v > 99999)
			return -1;
		p++;
	}
	if (*p != '_' || p - base < 3)
		return -1;
	return (int)v;
}

int mig_file_check(const char *name, const char *sql, size_t len, int *out_version,
		   char out_sum[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char q[132]; /* the name as whole characters, for the message */
	int v = parse_name(name);

	utf8_excerpt(q, sizeof(q), name, strlen(name), 128);
	if (v < 0)
		return err_set(ERR_INVALID,
			       "migration file '%s' is not named NNN_name.sql (three or more digits)",
			       q);
	/* the text runs up to a NUL byte: a change after one would go unseen */
	if (memchr(sql, '\0', len))
		return err_set(ERR_INVALID,
			       "migration file '%s' holds a NUL byte (at byte %zu): a migration is "
			       "SQL text; remove the byte",
			       q, (size_t)((const char *)memchr(sql, '\0', len) - sql));
	crypto_hash_sha256(h, (const unsigned char *)sql, len);
	sodium_bin2hex(out_sum, 65, h, sizeof(h));
	*out_version = v;
	return 0;
}

static int add_file(mig_file *files, int *n, const char *base, const char *sql, size_t len)
{
	int v, rc;
	char sum[65];

	rc = mig_file_check(base, sql, len, &v, sum);
	if (rc < 0)
		return rc;
	if (*n >= MIG_MAX)
		return err_set(ERR_TOOBIG, "more than %d migrations", MIG_MAX);
	for (int i = 0; i < *n; i++)
		if (files[i].version == v)
			return err_set(ERR_INVALID, "two migrations share version %d: %s and %s", v,
				       files[i].name, base);
	files[*n].version = v;
	snprintf(files[*n].name, sizeof(files[*n].name), "%s", base);
	files[*n].sql = malloc(len + 1);
	if (!files[*n].sql)
		return err_set(ERR_NOMEM, "out of memory");
	memcpy(files[*n].sql, sql, len);
	files[*n].sql[len] = '\0';
	memcpy(files[*n].sum, sum, sizeof(sum));
	(*n)++;
	return 0;
}

static int read_file(const char *path, buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t got;
	int rc = 0;

	if (!f)
		return err_set(ERR_IO, "cannot read %s: %s", path, strerror(errno));
	got = fread(chunk, 1, sizeof(chunk), f);
	while (rc == 0 && got > 0) {
		rc = buf_append(out, chunk, got);
		got = fread(chunk, 1, sizeof(chunk), f);
	}
	if (rc == 0 && ferror(f))
		rc = err_set(ERR_IO, "cannot read %s", path);
	fclose(f);
	return rc;
}

static int by_version(const void *a, const void *b)
{
	return ((const mig_file *)a)->version - ((const mig_file *)b)->version;
}

static int load_files(const char *dir, mig_file **out, int *n)
{
	mig_file *files = calloc(MIG_MAX, sizeof(*files));
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!files)
		return err_set(ERR_NOMEM, "out of memory");
	if (!dir) {
		for (const orch_embedded_file *f = orch_embedded; f->path && rc == 0; f++) {
			const char *base;
			if (strncmp(f->path, "migrations/", 11) != 0)
				continue;
			base = f->path + 11;
			rc = add_file(files, n, base, f->data, f->size);
		}
	} else {
		DIR *d = opendir(dir);
		struct dirent *de;

		if (!d) {
			files_free(files, 0);
			return err_set(ERR_IO, "cannot open migrations folder %s: %s", dir,
				       strerror(errno));
		}
		for (de = readdir(d); rc == 0 && de; de = readdir(d)) {
			char path[4096];
			buf b;
			size_t len = strlen(de->d_name);

			if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			buf_init(&b, 16 << 20);
			rc = read_file(path, &b);
			if (rc == 0)
				rc = add_file(files, n, de->d_name, buf_cstr(&b), b.len);
			buf_free(&b);
		}
		closedir(d);
	}
	if (rc < 0) {
		files_free(files, *n);
		*n = 0;
		return rc;
	}
	qsort(files, (size_t)*n, sizeof(*files), by_version);
	*out = files;
	return 0;
}

static void say(FILE *log, const char *fmt, const char *a, const char *b)
{
	if (log) {
		fprintf(log, fmt, a, b);
		fflush(log);
	}
}

int mig_run(const char *url, const char *dir, int dry_run, FILE *log, mig_report *out)
{
	mig_file *files = NULL;
	PGresult *applied = NULL;
	pg_conn *c = NULL;
	int n = 0, rc, locked = 0;

	memset(out, 0, sizeof(*out));
	rc = load_files(dir, &files, &n);
	if (rc < 0)
		return rc;
	rc = pg_conn_open(&c, url);
	if (rc < 0)
		goto done;
	rc = pg_exec(c, NULL, "SELECT pg_advisory_lock(" MIG_LOCK_KEY ")", 0, NULL);
	if (rc < 0)
		goto done;
	locked = 1;
	rc = pg_exec_script(c, "SET client_min_messages = warning; "
			       "CREATE TABLE IF NOT EXISTS schema_migrations ("
			       " version int PRIMARY KEY, name text NOT NULL,"
			       " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
	if (rc < 0)
		goto done;
	rc = pg_exec(c, &applied,
		     "SELECT version, name, checksum FROM schema_migrations ORDER BY version", 0,
		     NULL);
	if (rc < 0)
		goto done;

	/* every applied migration must still be here, unchanged */
	for (int i = 0; i < pg_rows(applied); i++) {
		int v = (int)pg_int(applied, i, 0), found = -1;
		for (int k = 0; k < n; k++)
			if (files[k].version == v)
				found = k;
		if (found < 0) {
			rc = err_set(ERR_CONFLICT,
				     "the database has migration %s applied, which this orchestrator "
				     "does not have: run a newer orchestrator against this database",
				     pg_val(applied, i, 1));
			goto done;
		}
		if (strcmp(files[found].sum, pg_val(applied, i, 2)) != 0) {
			rc = err_set(ERR_CONFLICT,
				     "migration %s changed after it was applied (checksum %.12s… in the "
				     "database, %.12s… now); applied migrations must never be edited: "
				     "restore the file and put the change in a new migration",
				     files[found].name, pg_val(applied, i, 2), files[found].sum);
			goto done;
		}
	}

	for (int k = 0; k < n; k++) {
		int done_already = 0;
		char version[16];
		const char *params[3] = {version, files[k].name, files[k].sum};

		for (int i = 0; i < pg_rows(applied); i++)
			if ((int)pg_int(applied, i, 0) == files[k].version)
				done_already = 1;
		if (done_already) {
			out->already++;
			continue;
		}
		if (dry_run) {
			out->pending++;
			say(log, "pending  %s%s\n", files[k].name, "");
			continue;
		}
		snprintf(version, sizeof(version), "%d", files[k].version);
		rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
		if (rc == 0)
			rc = pg_exec_script(c, files[k].sql);
		if (rc == 0)
			rc = pg_exec(c, NULL,
				     "INSERT INTO schema_migrations (version, name, checksum) "
				     "VALUES ($1, $2, $3)",
				     3, params);
		if (rc == 0)
			rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
		if (rc < 0) {
			err_wrap("migration %s failed and was rolled back", files[k].name);
			pg_exec(c, NULL, "ROLLBACK", 0, NULL);
			goto done;
		}
		out->applied++;
		say(log, "applied  %s%s\n", files[k].name, "");
	}
done:
	if (locked && c && !pg_conn_broken(c))
		pg_exec(c, NULL, "SELECT pg_advisory_unlock(" MIG_LOCK_KEY ")", 0, NULL);
	PQclear(applied);
	pg_conn_close(c);
	files_free(files, n);
	return rc;
}
