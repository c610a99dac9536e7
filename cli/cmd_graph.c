/* orchestrator graph — the shape of a graph the engine runs, drawn from
 * its declaration (engine/graph.h): every node and every transition a run
 * may take. */
#include "cli/cli.h"
#include "core/err.h"
#include "engine/graph.h"
#include "nodes/factory.h"

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
	"orchestrator graph [<name>] [--mermaid | --dot | --json]\n"
	"  Prints a graph the engine runs, as it is declared: its nodes and every\n"
	"  transition a run may take (fixed edges, the targets each router may pick,\n"
	"  the destinations a node may route to, joins). Without a name, lists the\n"
	"  graphs. --mermaid prints a Mermaid flowchart (as LangGraph's draw_mermaid:\n"
	"  solid arrows for fixed edges, dotted ones for routers), --dot a Graphviz\n"
	"  graph, --json the transitions as {from, to, kind}.";

/* The graphs `serve` and `engine` register with the engine. */
static const struct {
	const char *name;
	int (*build)(eng_graph **out);
	const char *about;
} GRAPHS[] = {
	{ND_GRAPH, nd_factory_graph, "the factory: from an idea to merged, tested code"},
};

static int list_graphs(void)
{
	for (size_t i = 0; i < sizeof(GRAPHS) / sizeof(GRAPHS[0]); i++)
		printf("%-10s %s\n", GRAPHS[i].name, GRAPHS[i].about);
	return 0;
}

int cmd_graph(int argc, char **argv)
{
	const char *name = NULL, *format = "text";
	eng_graph *g = NULL;
	json_t *edges = NULL;
	buf out;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		}
		if (cli_flag(argv, i, "--mermaid") || cli_flag(argv, i, "--dot") ||
		    cli_flag(argv, i, "--json"))
			format = argv[i] + 2;
		else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else
			return cli_usage(USAGE);
	}
	if (!name)
		return list_graphs();
	for (size_t i = 0; !g && i < sizeof(GRAPHS) / sizeof(GRAPHS[0]); i++)
		if (strcmp(GRAPHS[i].name, name) == 0 && GRAPHS[i].build(&g) < 0)
			return cli_fail("graph");
	if (!g) {
		fprintf(stderr, "orchestrator: graph: there is no graph '%s'; "
				"'orchestrator graph' lists them\n", name);
		return 1;
	}
	buf_init(&out, 0);
	if (strcmp(format, "json") == 0) {
		rc = eng_graph_edges(g, &edges);
		if (rc == 0)
			cli_print_json(edges);
		json_decref(edges);
	} else {
		rc = eng_graph_draw(g, format, &out);
		if (rc == 0)
			fputs(buf_cstr(&out), stdout);
	}
	buf_free(&out);
	eng_graph_free(g);
	return rc < 0 ? cli_fail("graph") : 0;
}
