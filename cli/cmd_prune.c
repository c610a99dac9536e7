/* orchestrator prune — retention for checkpoints of finished threads. */
#include "cli/cli.h"
#include "core/err.h"
#include "engine/control.h"

#include <stdio.h>

static const char USAGE[] =
	"orchestrator prune [--days N] [--keep N]\n"
	"  For threads with no active run and no activity for N days (default\n"
	"  ORCH_RETENTION_DAYS), keeps the newest --keep checkpoints (default\n"
	"  ORCH_RETENTION_KEEP) and deletes the older ones. `serve` does this hourly.";

int cmd_prune(int argc, char **argv)
{
	int64_t days = cli_cfg.retention_days, keep = cli_cfg.retention_keep;
	eng_prune_stats st;
	pg_conn *c;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--days", &v)) {
			days = cli_int(v);
			if (days >= 0)
				continue;
		}
		if (cli_opt(argc, argv, &i, "--keep", &v)) {
			keep = cli_int(v);
			if (keep >= 1)
				continue;
		}
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		}
		return cli_usage(USAGE);
	}
	c = cli_db();
	if (!c)
		return 1;
	rc = eng_prune(c, (int)days, (int)keep, &st);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("prune");
	printf("pruned %d threads: %d checkpoints deleted, %d snapshots written, %d events deleted\n",
	       st.threads, st.checkpoints, st.snapshots, st.events);
	return 0;
}
