-- Subgraphs (eng_graph_add_subgraph, engine/graph.h): a compiled graph that
-- runs as one node of another keeps its own checkpoints, in a thread of its
-- own: one per invocation of that node, keyed
-- "<parent key>/<node>:<run>.<step>.<task>", with the parent thread and the
-- node's path (ns, "outer:0/inner:1") recorded here. History, state and
-- fork work on such a thread as on any other (a fork of it moves the head
-- the parent resumes into).
ALTER TABLE threads ADD COLUMN parent_id bigint REFERENCES threads (id) ON DELETE CASCADE;
ALTER TABLE threads ADD COLUMN ns text;
CREATE INDEX threads_parent ON threads (parent_id) WHERE parent_id IS NOT NULL;
