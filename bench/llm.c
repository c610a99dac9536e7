/*
 * bench/llm — what the LLM client costs per request, against the fake
 * OpenAI-compatible server on loopback (build/tests/progs/fake_openai).
 *
 * The same request as the openai-node reference (system + user message,
 * max_tokens 16), the reply parsed and checked. Phases:
 *   - bare: libcurl easy handles with keep-alive, POST, body collected, no
 *     parsing: the floor of this harness;
 *   - llm: llm_chat() through the whole client (registry, scheduler, body
 *     builder, redaction hook, HTTP, reply parser into llm_response), the
 *     reply asked for whole as the reference does (stream_replies false);
 *   - sequential pairs alternating bare and llm in one thread (medians);
 *   - CONC requests in flight, each for bare and llm; streams for llm.
 * Prints one JSON object on stdout. Knobs: N_WARM (1000), N_SEQ (3000),
 * N_CONC (20000), N_STREAM (5000), CONC (64), FAKE (path of fake_openai).
 */
#include "core/buf.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"
#include "llm/llm.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *BODY = "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"system\",\"content\":"
			  "\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":"
			  "\"Say hello.\"}],\"max_tokens\":16}";
static const char *REPLY = "Hello! How can I help you today?";

static char g_url[128];
static llm_service *g_svc;
static atomic_long g_next, g_fail;
static long g_total;

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	return *end || n <= 0 ? def : n;
}

static double cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* --- bare libcurl --- */

typedef struct bare {
	CURL *h;
	struct curl_slist *hdrs;
	buf body;
} bare;

static size_t bare_write(char *d, size_t s, size_t n, void *ud)
{
	bare *b = ud;
	buf_append(&b->body, d, s * n);
	return s * n;
}

static void bare_init(bare *b)
{
	b->h = curl_easy_init();
	b->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	b->hdrs = curl_slist_append(b->hdrs, "Authorization: Bearer sk-bench-dummy-key");
	buf_init(&b->body, 0);
	curl_easy_setopt(b->h, CURLOPT_URL, g_url);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, b->hdrs);
	curl_easy_setopt(b->h, CURLOPT_POSTFIELDS, BODY);
	curl_easy_setopt(b->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(b->h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, bare_write);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, b);
}

static int bare_one(bare *b)
{
	long st = 0;

	buf_reset(&b->body);
	if (curl_easy_perform(b->h) != CURLE_OK)
		return -1;
	curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &st);
	return st == 200 && strstr(buf_cstr(&b->body), REPLY) ? 0 : -1;
}

static void bare_free(bare *b)
{
	curl_easy_cleanup(b->h);
	curl_slist_free_all(b->hdrs);
	buf_free(&b->body);
}

/* --- the client under test --- */

static llm_message g_msgs[2] = {
	{.role = "system", .content = "You are a helpful assistant."},
	{.role = "user", .content = "Say hello."},
};

static int llm_one(int stream)
{
	llm_request rq;
	llm_response out;
	llm_call call = {.role = "default", .owner = "bench"};
	int rc;

	llm_request_init(&rq);
	rq.messages = g_msgs;
	rq.n_messages = 2;
	rq.max_tokens = 16;
	rq.stream = stream;
	rc = llm_chat(g_svc, &call, &rq, &out);
	if (rc == 0 && stream)
		rc = strncmp(out.content, REPLY, strlen(REPLY)) == 0 ? 0 : -1;
	else if (rc == 0)
		rc = strcmp(out.content, REPLY) == 0 && out.tokens_in == 19 ? 0 : -1;
	if (rc < 0 && atomic_load(&g_fail) < 3)
		fprintf(stderr, "llm bench: call failed: %s\n", err_last());
	llm_response_free(&out);
	return rc;
}

/* --- concurrency phases --- */

typedef struct phase {
	int kind; /* 0 bare, 1 llm, 2 llm streaming */
} phase;

static void *conc_main(void *p)
{
	phase *ph = p;
	bare b;

	if (ph->kind == 0)
		bare_init(&b);
	while (atomic_fetch_add(&g_next, 1) < g_total) {
		int rc = ph->kind == 0 ? bare_one(&b) : llm_one(ph->kind == 2);
		if (rc < 0)
			atomic_fetch_add(&g_fail, 1);
	}
	if (ph->kind == 0)
		bare_free(&b);
	return NULL;
}

static double run_conc(int kind, long n, int conc, double *cpu_per_req)
{
	pthread_t th[256];
	phase ph = {kind};
	int64_t t0;
	double c0, secs;

	atomic_store(&g_next, 0);
	atomic_store(&g_fail, 0);
	g_total = n;
	c0 = cpu_us();
	t0 = util_mono_us();
	for (int i = 0; i < conc; i++)
		pthread_create(&th[i], NULL, conc_main, &ph);
	for (int i = 0; i < conc; i++)
		pthread_join(th[i], NULL);
	secs = (double)(util_mono_us() - t0) / 1e6;
	*cpu_per_req = (cpu_us() - c0) / (double)n;
	if (atomic_load(&g_fail) > 0) {
		fprintf(stderr, "llm bench: %ld of %ld requests failed\n", atomic_load(&g_fail), n);
		exit(1);
	}
	return (double)n / secs;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[(long)((double)(n - 1) * p)];
}

static pid_t start_fake(const char *prog, int *port)
{
	int fds[2];
	char line[64];
	FILE *in;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(prog, prog, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in || !fgets(line, sizeof(line), in) || sscanf(line, "{\"port\": %d}", port) != 1)
		return -1;
	fclose(in);
	return pid;
}

static void fake_config(int port)
{
	http_client *c = NULL;
	http_request rq = {0};
	http_response r;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/__script", port);
	rq.method = "POST";
	rq.url = url;
	rq.body = "{\"record\": false}";
	rq.body_len = strlen(rq.body);
	if (http_client_new(&c) == 0 && http_do(c, &rq, &r) == 0)
		http_response_free(&r);
	http_client_free(c);
}

int main(void)
{
	long n_warm = env_long("N_WARM", 1000), n_seq = env_long("N_SEQ", 3000),
	     n_conc = env_long("N_CONC", 20000), n_stream = env_long("N_STREAM", 5000);
	int conc = (int)env_long("CONC", 64);
	const char *fake = getenv("FAKE");
	char models[512], fake_default[256];
	llm_registry *reg = NULL;
	double *seq_bare, *seq_llm, cpu_bare, cpu_llm, cpu_stream, rps_bare, rps_llm, rps_stream;
	double c0, seq_cpu_bare = 0, seq_cpu_llm = 0;
	int port = 0;
	pid_t pid;
	bare b;

	if (conc > 256)
		conc = 256;
	if (util_init() < 0 || http_global_init() < 0)
		return 1;
	log_configure(LOG_WARN, 1);
	signal(SIGPIPE, SIG_IGN);
	if (!fake) {
		const char *build = getenv("BUILD");
		snprintf(fake_default, sizeof(fake_default), "%s/tests/progs/fake_openai",
			 build && *build ? build : "build");
		fake = fake_default;
	}
	pid = start_fake(fake, &port);
	if (pid < 0) {
		fprintf(stderr, "llm bench: cannot start %s (make test-build builds it)\n", fake);
		return 1;
	}
	fake_config(port);
	snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%d/v1/chat/completions", port);
	snprintf(models, sizeof(models),
		 "{\"endpoints\": {\"fake\": {\"base_url\": \"http://127.0.0.1:%d/v1\", \"slots\": %d,"
		 " \"api_key_env\": \"BENCH_KEY\", \"stream_replies\": false}},"
		 " \"models\": {\"bench\": {\"endpoint\": \"fake\","
		 " \"model\": \"bench-model\", \"context\": 8192, \"max_output\": 1024}}}",
		 port, conc);
	setenv("BENCH_KEY", "sk-bench-dummy-key", 1);
	if (llm_registry_load_text(&reg, models, "bench") < 0 ||
	    llm_service_new(&g_svc, reg, NULL) < 0) {
		fprintf(stderr, "llm bench: %s\n", err_last());
		return 1;
	}

	/* warm-up */
	bare_init(&b);
	for (long i = 0; i < n_warm; i++)
		if (bare_one(&b) < 0 || llm_one(0) < 0) {
			fprintf(stderr, "llm bench: warm-up request failed\n");
			return 1;
		}
	for (long i = 0; i < n_warm / 5; i++)
		if (llm_one(1) < 0)
			return 1;

	/* sequential pairs: bare and llm alternating, one request at a time */
	seq_bare = calloc((size_t)n_seq, sizeof(double));
	seq_llm = calloc((size_t)n_seq, sizeof(double));
	for (long i = 0; i < n_seq; i++) {
		int64_t t0 = util_mono_ns();
		c0 = cpu_us();
		if (bare_one(&b) < 0)
			return 1;
		seq_bare[i] = (double)(util_mono_ns() - t0) / 1e6;
		seq_cpu_bare += cpu_us() - c0;
		t0 = util_mono_ns();
		c0 = cpu_us();
		if (llm_one(0) < 0)
			return 1;
		seq_llm[i] = (double)(util_mono_ns() - t0) / 1e6;
		seq_cpu_llm += cpu_us() - c0;
	}
	bare_free(&b);

	rps_bare = run_conc(0, n_conc, conc, &cpu_bare);
	rps_llm = run_conc(1, n_conc, conc, &cpu_llm);
	rps_stream = run_conc(2, n_stream, conc, &cpu_stream);

	{
		double mb = pct(seq_bare, n_seq, 0.5), ml = pct(seq_llm, n_seq, 0.5);
		double p99b = pct(seq_bare, n_seq, 0.99), p99l = pct(seq_llm, n_seq, 0.99);
		printf("{\"rps_64\": %.0f, \"rps_64_bare\": %.0f, \"added_latency_ms\": %.4f,"
		       " \"stream_rps_64\": %.0f, \"median_ms\": %.4f, \"median_ms_bare\": %.4f,"
		       " \"p99_ms\": %.4f, \"p99_ms_bare\": %.4f,"
		       " \"client_cpu_us_per_req\": %.1f, \"client_cpu_us_per_req_bare\": %.1f,"
		       " \"stream_client_cpu_us_per_req\": %.1f,"
		       " \"seq_cpu_us_per_req\": %.1f, \"seq_cpu_us_per_req_bare\": %.1f,"
		       " \"conc\": %d, \"n_conc\": %ld, \"n_seq\": %ld, \"n_stream\": %ld}\n",
		       rps_llm, rps_bare, ml - mb, rps_stream, ml, mb, p99l, p99b, cpu_llm, cpu_bare,
		       cpu_stream, seq_cpu_llm / (double)n_seq, seq_cpu_bare / (double)n_seq, conc,
		       n_conc, n_seq, n_stream);
	}
	free(seq_bare);
	free(seq_llm);
	llm_service_free(g_svc);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return 0;
}
