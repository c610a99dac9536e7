/*
 * migrate — applies migrations/NNN_name.sql to the database, in order.
 *
 * Each migration runs in its own transaction and is recorded in
 * schema_migrations with a SHA-256 of its text. An advisory lock makes a
 * second migrator wait rather than race. A migration whose text changed
 * after it was applied, an applied migration whose file is gone, or a
 * database newer than this binary stops everything with a message saying
 * what to do: applied migrations are history and never edited.
 *
 * The migrations are compiled into the binary (core/embed.h); a folder can
 * be given instead, for development.
 */
#ifndef ORCH_CORE_MIGRATE_H
#define ORCH_CORE_MIGRATE_H

#include <stddef.h>
#include <stdio.h>

typedef struct mig_report {
	int applied;     /* migrations applied now */
	int already;     /* migrations that were applied before */
	int pending;     /* with dry_run: migrations that would be applied */
} mig_report;

/* Brings the database at `url` up to date with the migrations in `dir`
 * (NULL: the ones compiled in). With `dry_run` nothing is applied, only
 * checked and reported. One line per migration goes to `log` (may be
 * NULL). ERR_CONFLICT for a changed or missing migration, ERR_DB when one
 * fails (its changes are rolled back), ERR_INVALID for a badly named file. */
int mig_run(const char *url, const char *dir, int dry_run, FILE *log, mig_report *out);

/* Checks one migration file: the version its `name` gives ("NNN_name.sql":
 * three or more digits, a value up to 99999) into *out_version, and the
 * SHA-256 of its text (len bytes, no NUL byte) in hex, as schema_migrations
 * records it, into out_sum.
 * ERR_INVALID naming the file and what is wrong. */
int mig_file_check(const char *name, const char *sql, size_t len, int *out_version,
		   char out_sum[65]);

#endif
