/* orchestrator migrate — create or update the database schema. */
#include "cli/cli.h"
#include "core/err.h"
#include "core/migrate.h"

#include <stdio.h>

static const char USAGE[] =
	"orchestrator migrate [--dir DIR] [--dry-run]\n"
	"  Applies the migrations compiled into this binary (or those in DIR) that the\n"
	"  database at DATABASE_URL has not seen, each in its own transaction.\n"
	"  --dry-run  only check and list what would be applied";

int cmd_migrate(int argc, char **argv)
{
	const char *dir = NULL;
	int dry = 0;
	mig_report rep;

	for (int i = 1; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "--dir", &dir))
			continue;
		if (cli_flag(argv, i, "--dry-run")) {
			dry = 1;
			continue;
		}
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		}
		return cli_usage(USAGE);
	}
	if (mig_run(cli_cfg.database_url, dir, dry, stdout, &rep) < 0)
		return cli_fail("migrate");
	if (dry)
		printf("%d applied before, %d pending\n", rep.already, rep.pending);
	else
		printf("database is up to date: %d applied now, %d before\n", rep.applied,
		       rep.already);
	return 0;
}
