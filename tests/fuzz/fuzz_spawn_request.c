/* A spawn request from the Redis stream (spawner/request.c), as any
 * producer may write it: spw_request_parse, the spawner's entry point.
 *
 * Properties: a request is accepted or refused with ERR_INVALID and a
 * message in valid UTF-8 (it goes back to the requester); a refused one
 * keeps only an id that is itself valid (a refusal is addressed to it); an
 * accepted one has every field in its documented form (id, task, repo, a
 * prompt for work, limits within their ranges) and survives its record:
 * spw_request_json, written and parsed again, gives the same request. */
#include "tests/fuzz/fuzz.h"

#include "core/err.h"
#include "spawner/request.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

static int task_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > SPW_TASK_MAX || strstr(t, "..") || t[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
		      (t[i] >= '0' && t[i] <= '9') || (i > 0 && strchr("._-", t[i]))))
			return 0;
	return 1;
}

static void check_fields(const spw_request *r)
{
	FZ_CHECK(spw_id_check(r->id) == 0, "id '%s'", r->id);
	FZ_CHECK(task_ok(r->task), "task '%s'", r->task);
	FZ_CHECK(r->project[0] != '\0', "no project");
	FZ_CHECK(r->repo[0] == '/' || strncmp(r->repo, "http://", 7) == 0 ||
			 strncmp(r->repo, "https://", 8) == 0 || strncmp(r->repo, "ssh://", 6) == 0,
		 "repo '%s'", r->repo);
	FZ_CHECK(strcmp(r->mode, "work") == 0 || strcmp(r->mode, "merge") == 0 ||
			 strcmp(r->mode, "publish") == 0,
		 "mode '%s'", r->mode);
	FZ_CHECK(strcmp(r->mode, "work") != 0 || (r->prompt && r->prompt[0]), "work without a prompt");
	FZ_CHECK(strcmp(r->mode, "publish") != 0 || r->mirror[0], "publish without a mirror");
	FZ_CHECK(!r->test_command || r->test_command[0], "an empty test command kept");
	FZ_CHECK(r->thread_id >= 0 && r->run_id >= 0 && r->min_tests >= 0, "a negative id");
	FZ_CHECK(r->limits.steps >= 0 && r->limits.steps <= 10000 && r->limits.wall_ms >= 0 &&
			 r->limits.cmd_timeout_ms >= 0 && r->limits.cost_usd >= 0 &&
			 r->limits.cpus >= 0 && r->limits.pids >= 0 &&
			 (r->limits.mem_bytes == 0 || r->limits.mem_bytes >= (1 << 20)) &&
			 (r->limits.disk_bytes == 0 || r->limits.disk_bytes >= (1 << 20)),
		 "a limit out of range");
	FZ_CHECK(r->nhandles <= SPW_HANDLES_MAX, "%zu handles", r->nhandles);
	for (size_t i = 0; i < r->nhandles; i++)
		FZ_CHECK(r->handles[i] && strncmp(r->handles[i], "res_", 4) == 0, "handle %zu", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	spw_request r, again;
	json_t *rec, *rec2;
	char *text;
	int rc;

	err_clear();
	rc = spw_request_parse((const char *)data, size, &r);
	FZ_CHECK(rc == 0 || rc == ERR_INVALID || rc == ERR_NOMEM, "rc %d", rc);
	if (rc < 0) {
		FZ_CHECK(err_last()[0], "refused without a reason");
		FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())), "the reason is not UTF-8: %s",
			 err_last());
		FZ_CHECK(!r.id[0] || spw_id_check(r.id) == 0, "a refusal addressed to id '%s'", r.id);
		spw_request_free(&r);
		return 0;
	}
	check_fields(&r);
	rec = spw_request_json(&r);
	FZ_CHECK(rec != NULL, "no record");
	text = json_dumps(rec, JSON_COMPACT);
	FZ_CHECK(text != NULL, "the record does not serialise");
	rc = spw_request_parse(text, strlen(text), &again);
	FZ_CHECK(rc == 0, "the record is refused: %s\n    %s", err_last(), text);
	rec2 = spw_request_json(&again);
	FZ_CHECK(json_equal(rec, rec2), "the record changed when read again");
	json_decref(rec);
	json_decref(rec2);
	free(text);
	spw_request_free(&again);
	spw_request_free(&r);
	return 0;
}
