#include "eval/report.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static double num(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static int skipped(const json_t *t)
{
	return strcmp(jx_str(t, "outcome"), "skipped") == 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int ev_report_totals(json_t *report)
{
	const json_t *tasks = json_object_get(report, "tasks"), *t;
	int64_t tin = 0, tout = 0, calls = 0, person = 0, mism = 0;
	int ran = 0, solved = 0, skip = 0, nmerged = 0;
	double usd = 0, *merged = calloc(json_array_size(tasks) + 1, sizeof(double));
	json_t *tot;
	size_t i;

	if (!merged)
		return err_set(ERR_NOMEM, "out of memory");
	json_array_foreach(tasks, i, t) {
		if (skipped(t)) {
			skip++;
			continue;
		}
		ran++;
		solved += json_is_true(json_object_get(t, "solved"));
		tin += jx_int(t, "tokens_in");
		tout += jx_int(t, "tokens_out");
		usd += num(t, "cost_usd");
		calls += jx_int(t, "calls_total");
		person += jx_int(t, "interventions");
		mism += jx_int(json_object_get(t, "replay"), "mismatches");
		if (json_is_number(json_object_get(t, "merged_s")))
			merged[nmerged++] = num(t, "merged_s");
	}
	qsort(merged, (size_t)nmerged, sizeof(double), cmp_double);
	tot = json_pack("{s:i, s:i, s:i, s:i, s:f, s:I, s:I, s:f, s:I, s:I, s:I}", "tasks",
			(int)json_array_size(tasks), "ran", ran, "skipped", skip, "solved", solved,
			"pass_rate", ran ? (double)solved / ran : 0.0, "tokens_in", (json_int_t)tin,
			"tokens_out", (json_int_t)tout, "cost_usd", usd, "calls", (json_int_t)calls,
			"interventions", (json_int_t)person, "replay_mismatches", (json_int_t)mism);
	if (tot) {
		json_object_set_new(tot, "cost_per_solved_usd",
				    solved ? json_real(usd / solved) : json_null());
		json_object_set_new(tot, "median_merged_s",
				    nmerged == 0	  ? json_null()
				    : nmerged % 2 ? json_real(merged[nmerged / 2])
						  : json_real((merged[nmerged / 2 - 1] +
							       merged[nmerged / 2]) / 2));
	}
	free(merged);
	if (!tot)
		return err_set(ERR_NOMEM, "out of memory");
	json_object_set_new(report, "totals", tot);
	return 0;
}

/* "12.3k" */
static void tokens(int64_t n, char *out, size_t cap)
{
	if (n >= 1000000)
		snprintf(out, cap, "%.1fM", (double)n / 1e6);
	else if (n >= 1000)
		snprintf(out, cap, "%.1fk", (double)n / 1e3);
	else
		snprintf(out, cap, "%lld", (long long)n);
}

/* "b2 a1 d6 r2": calls by role, each role by its initial. */
static void calls_short(const json_t *calls, char *out, size_t cap)
{
	const char *k;
	const json_t *v;
	size_t used = 0;

	out[0] = '\0';
	json_object_foreach((json_t *)calls, k, v) {
		int w = snprintf(out + used, cap - used, "%s%c%lld", used ? " " : "", k[0],
				 (long long)json_integer_value(v));
		if (w < 0 || (size_t)w >= cap - used)
			break;
		used += (size_t)w;
	}
	if (!used)
		snprintf(out, cap, "-");
}

static void hidden_cell(const json_t *t, char *out, size_t cap)
{
	const json_t *h = json_object_get(t, "hidden");

	if (!json_is_true(json_object_get(h, "ran")))
		snprintf(out, cap, "-");
	else if (jx_int(h, "total") >= 0)
		snprintf(out, cap, "%lld/%lld", jx_int(h, "passed"), jx_int(h, "total"));
	else
		snprintf(out, cap, "%s", json_is_true(json_object_get(h, "passed_all")) ? "pass"
										  : "fail");
}

static void money(double usd, char *out, size_t cap)
{
	snprintf(out, cap, "$%.4f", usd);
}

void ev_report_table(const json_t *report, FILE *out)
{
	const json_t *tasks = json_object_get(report, "tasks"), *t;
	const json_t *tot = json_object_get(report, "totals");
	const json_t *gate = json_object_get(report, "gate");
	size_t i;
	char tin[16], tout[16], cost[24], calls[64], hidden[24], cps[24], med[24];

	fprintf(out, "\n%-24s %-6s %-6s %-16s %7s %15s %9s %-14s %4s %4s %4s %4s %7s\n", "task",
		"lang", "size", "outcome", "hidden", "tokens in/out", "cost", "calls by role", "att",
		"rev", "conf", "you", "wall");
	json_array_foreach(tasks, i, t) {
		char io[40], wall[16];
		if (skipped(t))
			continue;
		tokens(jx_int(t, "tokens_in"), tin, sizeof(tin));
		tokens(jx_int(t, "tokens_out"), tout, sizeof(tout));
		snprintf(io, sizeof(io), "%s/%s", tin, tout);
		money(num(t, "cost_usd"), cost, sizeof(cost));
		calls_short(json_object_get(t, "calls"), calls, sizeof(calls));
		hidden_cell(t, hidden, sizeof(hidden));
		snprintf(wall, sizeof(wall), "%.0fs", num(t, "wall_s"));
		fprintf(out, "%-24s %-6s %-6s %-16s %7s %15s %9s %-14s %4lld %4lld %4lld %4lld %7s\n",
			jx_str(t, "id"), jx_str(t, "lang"), jx_str(t, "size"), jx_str(t, "outcome"),
			hidden, io, cost, calls, jx_int(t, "worker_attempts"),
			jx_int(t, "review_rounds"), jx_int(t, "merge_conflicts"),
			jx_int(t, "interventions"), wall);
	}
	json_array_foreach(tasks, i, t)
		if (!skipped(t) && strcmp(jx_str(t, "outcome"), "solved") != 0 &&
		    *jx_str(t, "reason"))
			fprintf(out, "  %s: %.300s\n", jx_str(t, "id"), jx_str(t, "reason"));
	/* the skipped tasks, by reason */
	json_array_foreach(tasks, i, t) {
		const json_t *u;
		size_t k;
		int first = 1, n = 0;
		if (!skipped(t))
			continue;
		json_array_foreach(tasks, k, u)
			if (k < i && skipped(u) && strcmp(jx_str(u, "reason"), jx_str(t, "reason")) == 0)
				first = 0;
		if (!first)
			continue;
		json_array_foreach(tasks, k, u)
			n += skipped(u) && strcmp(jx_str(u, "reason"), jx_str(t, "reason")) == 0;
		fprintf(out, "skipped %d, %s:", n, jx_str(t, "reason"));
		json_array_foreach(tasks, k, u)
			if (skipped(u) && strcmp(jx_str(u, "reason"), jx_str(t, "reason")) == 0)
				fprintf(out, " %s", jx_str(u, "id"));
		fputc('\n', out);
	}
	if (json_is_object(tot)) {
		money(num(tot, "cost_usd"), cost, sizeof(cost));
		if (json_is_number(json_object_get(tot, "cost_per_solved_usd")))
			money(num(tot, "cost_per_solved_usd"), cps, sizeof(cps));
		else
			snprintf(cps, sizeof(cps), "-");
		if (json_is_number(json_object_get(tot, "median_merged_s")))
			snprintf(med, sizeof(med), "%.0fs", num(tot, "median_merged_s"));
		else
			snprintf(med, sizeof(med), "-");
		tokens(jx_int(tot, "tokens_in"), tin, sizeof(tin));
		tokens(jx_int(tot, "tokens_out"), tout, sizeof(tout));
		fprintf(out, "\npass rate %lld/%lld (%.0f%%) · cost %s (%s tokens in, %s out) · cost per "
			     "solved task %s · median time to merged main %s · %lld model calls · "
			     "%lld interventions%s\n",
			jx_int(tot, "solved"), jx_int(tot, "ran"), 100.0 * num(tot, "pass_rate"), cost,
			tin, tout, cps, med, jx_int(tot, "calls"), jx_int(tot, "interventions"),
			jx_int(tot, "replay_mismatches") ? " · REPLAY MISMATCHES" : "");
	}
	if (json_is_object(gate)) {
		const json_t *c;
		fprintf(out, "gate (%s): %s\n", jx_str(gate, "baseline"),
			json_is_true(json_object_get(gate, "passed")) ? "passed" : "FAILED");
		json_array_foreach(json_object_get(gate, "checks"), i, c)
			fprintf(out, "  %s %s: %.4g now, %.4g in the baseline (limit %.4g)\n",
				json_is_true(json_object_get(c, "passed")) ? "ok  " : "FAIL",
				jx_str(c, "what"), num(c, "now"), num(c, "baseline"), num(c, "limit"));
		json_array_foreach(json_object_get(gate, "changed"), i, c)
			fprintf(out, "  changed: %s was %s, now %s\n", jx_str(c, "id"), jx_str(c, "was"),
				jx_str(c, "now"));
	}
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return err_set(ERR_IO, "cannot write %s: %s", path, strerror(errno));
	if (fputs(text, f) < 0 || fclose(f) != 0)
		return err_set(ERR_IO, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

/* The markdown report. */
static void markdown(const json_t *report, buf *md)
{
	const json_t *run = json_object_get(report, "run");
	const json_t *tot = json_object_get(report, "totals");
	const json_t *tasks = json_object_get(report, "tasks"), *t;
	size_t i;

	buf_printf(md, "# Eval report\n\nMode **%s** (%s), finished %s, %lld at a time, %.0f s.\n\n",
		   jx_str(run, "mode"), jx_str(run, "models"), jx_str(run, "finished_at"),
		   jx_int(run, "parallel"), num(run, "seconds"));
	if (json_is_object(tot)) {
		buf_printf(md, "- pass rate: **%lld of %lld** (%.0f%%)\n", jx_int(tot, "solved"),
			   jx_int(tot, "ran"), 100.0 * num(tot, "pass_rate"));
		buf_printf(md, "- cost: $%.4f (%lld tokens in, %lld out)\n", num(tot, "cost_usd"),
			   jx_int(tot, "tokens_in"), jx_int(tot, "tokens_out"));
		if (json_is_number(json_object_get(tot, "cost_per_solved_usd")))
			buf_printf(md, "- cost per solved task: $%.4f\n",
				   num(tot, "cost_per_solved_usd"));
		if (json_is_number(json_object_get(tot, "median_merged_s")))
			buf_printf(md, "- median time to a merged main: %.0f s\n",
				   num(tot, "median_merged_s"));
		buf_printf(md, "- model calls: %lld; the person's interventions: %lld\n",
			   jx_int(tot, "calls"), jx_int(tot, "interventions"));
		if (jx_int(tot, "skipped"))
			buf_printf(md, "- skipped: %lld\n", jx_int(tot, "skipped"));
	}
	buf_puts(md, "\n| task | lang | size | outcome | hidden tests | tokens in | tokens out | "
		     "cost | calls by role | worker attempts | review rounds | merge conflicts | "
		     "interventions | wall | to merged main |\n"
		     "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	json_array_foreach(tasks, i, t) {
		char hidden[24], calls[300] = "";
		const char *k;
		const json_t *v;
		size_t used = 0;

		if (skipped(t))
			continue;
		hidden_cell(t, hidden, sizeof(hidden));
		json_object_foreach((json_t *)json_object_get(t, "calls"), k, v) {
			int w = snprintf(calls + used, sizeof(calls) - used, "%s%s %lld", used ? ", " : "",
					 k, (long long)json_integer_value(v));
			if (w < 0 || (size_t)w >= sizeof(calls) - used)
				break;
			used += (size_t)w;
		}
		buf_printf(md, "| `%s` | %s | %s | %s | %s | %lld | %lld | $%.4f | %s | %lld | %lld | "
			       "%lld | %lld | %.0f s | ",
			   jx_str(t, "id"), jx_str(t, "lang"), jx_str(t, "size"), jx_str(t, "outcome"),
			   hidden, jx_int(t, "tokens_in"), jx_int(t, "tokens_out"), num(t, "cost_usd"),
			   used ? calls : "-", jx_int(t, "worker_attempts"), jx_int(t, "review_rounds"),
			   jx_int(t, "merge_conflicts"), jx_int(t, "interventions"), num(t, "wall_s"));
		if (json_is_number(json_object_get(t, "merged_s")))
			buf_printf(md, "%.0f s |\n", num(t, "merged_s"));
		else
			buf_puts(md, "- |\n");
	}
	buf_puts(md, "\n");
	json_array_foreach(tasks, i, t)
		if (strcmp(jx_str(t, "outcome"), "solved") != 0 && *jx_str(t, "reason"))
			buf_printf(md, "- `%s` (%s): %s\n", jx_str(t, "id"), jx_str(t, "outcome"),
				   jx_str(t, "reason"));
	if (json_is_object(json_object_get(report, "gate"))) {
		const json_t *g = json_object_get(report, "gate"), *c;
		buf_printf(md, "\n## Gate: %s\n\nAgainst `%s`, over %lld tasks.\n\n",
			   json_is_true(json_object_get(g, "passed")) ? "passed" : "FAILED",
			   jx_str(g, "baseline"), jx_int(g, "compared"));
		json_array_foreach(json_object_get(g, "checks"), i, c)
			buf_printf(md, "- %s: %.4g now, %.4g in the baseline, limit %.4g: %s\n",
				   jx_str(c, "what"), num(c, "now"), num(c, "baseline"),
				   num(c, "limit"),
				   json_is_true(json_object_get(c, "passed")) ? "ok" : "**failed**");
		json_array_foreach(json_object_get(g, "changed"), i, c)
			buf_printf(md, "- `%s` was %s, now %s\n", jx_str(c, "id"), jx_str(c, "was"),
				   jx_str(c, "now"));
	}
}

int ev_report_write(const json_t *report, const char *dir)
{
	char path[1200], *s;
	buf md;
	int rc;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return err_set(ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	s = json_dumps(report, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/report.json", dir);
	rc = write_file(path, s);
	free(s);
	if (rc < 0)
		return rc;
	buf_init(&md, 0);
	markdown(report, &md);
	snprintf(path, sizeof(path), "%s/report.md", dir);
	rc = write_file(path, buf_cstr(&md));
	buf_free(&md);
	return rc;
}

static json_t *check(const char *what, double baseline, double now, double limit, int passed)
{
	return json_pack("{s:s, s:f, s:f, s:f, s:b}", "what", what, "baseline", baseline, "now", now,
			 "limit", limit, "passed", passed);
}

int ev_report_gate(json_t *report, const char *path, int *passed)
{
	json_error_t je;
	json_t *base = json_load_file(path, 0, &je), *checks = NULL, *changed = NULL, *g;
	const json_t *btasks, *tol, *t;
	double tol_rate, tol_cost, b_usd = 0, n_usd = 0;
	int compared = 0, b_solved = 0, n_solved = 0, ok = 1;
	size_t i;

	*passed = 0;
	if (!base)
		return err_set(ERR_PARSE, "the baseline %s cannot be read: %s (line %d)", path, je.text,
			       je.line);
	btasks = json_object_get(base, "tasks");
	tol = json_object_get(base, "tolerance");
	if (!json_is_object(btasks)) {
		json_decref(base);
		return err_set(ERR_PARSE, "the baseline %s has no \"tasks\" object (write one with "
					  "orchestrator eval run --save-baseline FILE)", path);
	}
	tol_rate = json_is_number(json_object_get(tol, "pass_rate")) ? num(tol, "pass_rate") : 0.1;
	tol_cost = json_is_number(json_object_get(tol, "cost_per_solved"))
			   ? num(tol, "cost_per_solved")
			   : 0.25;
	checks = json_array();
	changed = json_array();
	json_array_foreach(json_object_get(report, "tasks"), i, t) {
		const json_t *b = json_object_get(btasks, jx_str(t, "id"));
		int was, now;
		if (skipped(t) || !json_is_object(b))
			continue;
		compared++;
		was = json_is_true(json_object_get(b, "solved"));
		now = json_is_true(json_object_get(t, "solved"));
		b_solved += was;
		n_solved += now;
		b_usd += num(b, "cost_usd");
		n_usd += num(t, "cost_usd");
		if (was != now)
			json_array_append_new(changed,
					      json_pack("{s:s, s:s, s:s}", "id", jx_str(t, "id"), "was",
							was ? "solved" : "not solved", "now",
							now ? "solved" : jx_str(t, "outcome")));
	}
	if (compared > 0) {
		double br = (double)b_solved / compared, nr = (double)n_solved / compared;
		int pass = nr >= br - tol_rate - 1e-9;
		ok &= pass;
		json_array_append_new(checks, check("pass rate", br, nr, br - tol_rate, pass));
		if (b_solved > 0 && n_solved > 0) {
			double bc = b_usd / b_solved, nc = n_usd / n_solved;
			pass = nc <= bc * (1 + tol_cost) + 1e-12;
			ok &= pass;
			json_array_append_new(checks, check("cost per solved task (USD)", bc, nc,
							    bc * (1 + tol_cost), pass));
		}
	}
	g = json_pack("{s:s, s:b, s:o, s:o, s:i}", "baseline", path, "passed", ok, "checks", checks,
		      "changed", changed, "compared", compared);
	json_decref(base);
	if (!g)
		return err_set(ERR_NOMEM, "out of memory");
	json_object_set_new(report, "gate", g);
	*passed = ok;
	return 0;
}

int ev_report_save_baseline(const json_t *report, const char *path, const json_t *tolerance)
{
	json_t *tasks = json_object(), *b;
	const json_t *t;
	size_t i;
	char *s;
	int rc;

	if (!tasks)
		return err_set(ERR_NOMEM, "out of memory");
	json_array_foreach(json_object_get(report, "tasks"), i, t)
		if (!skipped(t))
			json_object_set_new(tasks, jx_str(t, "id"),
					    json_pack("{s:b, s:f}", "solved",
						      json_is_true(json_object_get(t, "solved")),
						      "cost_usd", num(t, "cost_usd")));
	b = json_pack("{s:s, s:s, s:o, s:o}", "about",
		      "eval baseline: per task, solved and cost; the gate compares a run's pass rate "
		      "and cost per solved task over the tasks both have (eval/README.md)",
		      "mode", jx_str(json_object_get(report, "run"), "mode"), "tolerance",
		      tolerance ? json_deep_copy(tolerance)
				: json_pack("{s:f, s:f}", "pass_rate", 0.1, "cost_per_solved", 0.25),
		      "tasks", tasks);
	if (!b)
		return err_set(ERR_NOMEM, "out of memory");
	s = json_dumps(b, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	json_decref(b);
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	rc = write_file(path, s);
	if (rc == 0) {
		FILE *f = fopen(path, "a");
		if (f) {
			fputc('\n', f);
			fclose(f);
		}
	}
	free(s);
	return rc;
}
