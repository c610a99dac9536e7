// The official MCP TypeScript SDK's client driving orchestrator's MCP server
// (test_mcp.py runs it). It prints TAP lines ("ok N - ...") and, as "# mcp>"
// and "# mcp<" comments, the transcript of every tool call it makes.
//
//   node mcp_client.mjs
//
// Environment: MCP_SDK (the folder holding node_modules/@modelcontextprotocol/sdk),
// MCP_TRANSPORT (stdio | http), ORCH_BIN (stdio: the server is `ORCH_BIN mcp`),
// MCP_URL and MCP_TOKEN, MCP_TOKEN_OUTSIDER (http), IDEA_A, IDEA_B,
// TG_QUESTION (a Telegram question's id nobody here may decide), TG_PROJECT,
// MCP_FLOW_TIMEOUT_S (default 240).
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const sdk = (p) => import(pathToFileURL(path.join(process.env.MCP_SDK,
	'node_modules/@modelcontextprotocol/sdk/dist/esm', p)).href);
const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const types = await sdk('types.js');

const T = process.env.MCP_TRANSPORT || 'stdio';
const FLOW_MS = 1000 * Number(process.env.MCP_FLOW_TIMEOUT_S || 240);
let n = 0, failed = 0;
function check(ok, desc, detail) {
	n++;
	if (!ok) failed++;
	console.log(`${ok ? 'ok' : 'not ok'} ${n} - [${T}] ${desc}`);
	if (!ok && detail !== undefined)
		console.log('# ' + String(typeof detail === 'string' ? detail : JSON.stringify(detail))
			.slice(0, 1500).replace(/\n/g, '\n# '));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const short = (v, max = 300) => {
	const s = typeof v === 'string' ? v : JSON.stringify(v);
	return s.length > max ? s.slice(0, max) + `… (${s.length} chars)` : s;
};

function transport(token) {
	if (T === 'stdio')
		return new StdioClientTransport({
			command: process.env.ORCH_BIN, args: ['mcp'], env: { ...process.env },
			stderr: 'inherit',
		});
	const headers = token ? { Authorization: `Bearer ${token}` } : {};
	return new StreamableHTTPClientTransport(new URL(process.env.MCP_URL),
		{ requestInit: { headers } });
}

const client = new Client({ name: 'orchestrator-test', version: '1.0.0' }, { capabilities: {} });
const logs = [], updates = [], listChanged = [];
client.setNotificationHandler(types.LoggingMessageNotificationSchema, (m) => logs.push(m.params));
client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (m) => updates.push(m.params.uri));
client.setNotificationHandler(types.ResourceListChangedNotificationSchema, () => listChanged.push(1));

// one tool call, written into the transcript
async function call(name, args, quiet) {
	if (!quiet)
		console.log(`# mcp> ${name} ${JSON.stringify(args)}`);
	const r = await client.callTool({ name, arguments: args });
	if (!quiet) {
		const text = r.isError ? 'ERROR ' + r.content[0].text : short(r.structuredContent, 400);
		console.log(`# mcp< ${text.replace(/\n/g, ' ')}`);
	}
	return r;
}

// polls project_status (quietly) until `until` holds; logs the stops
async function follow(project, until, what) {
	const end = Date.now() + FLOW_MS;
	let st;
	while (Date.now() < end) {
		const r = await call('project_status', { project }, true);
		st = r.structuredContent;
		if (!r.isError && until(st)) {
			console.log(`# mcp> project_status ${JSON.stringify({ project })}   (polled until ${what})`);
			console.log(`# mcp< ${short({ stage: st.stage, run: st.run, open_questions: st.open_questions, next: st.next }, 600)}`);
			return st;
		}
		await sleep(300);
	}
	console.log(`# gave up waiting for ${what}: ${short(st, 800)}`);
	return null;
}

const questionId = (st) => st && st.open_questions && st.open_questions.length &&
	Number.isInteger(st.open_questions[0].id) ? st.open_questions[0].id : 0;

// a client that cannot connect: the error it gets
async function refused(token) {
	const c = new Client({ name: 'orchestrator-test-refused', version: '1.0.0' }, { capabilities: {} });
	const err = await c.connect(transport(token)).then(() => null, (x) => x);
	try { await c.close(); } catch (_) { /* gone */ }
	return err;
}

// the same calls as another identity, on a session of its own
async function as(token, fn) {
	const c = new Client({ name: 'orchestrator-test-outsider', version: '1.0.0' }, { capabilities: {} });
	await c.connect(transport(token));
	try {
		return await fn(async (name, args) => {
			console.log(`# mcp(outsider)> ${name} ${JSON.stringify(args)}`);
			const r = await c.callTool({ name, arguments: args });
			console.log(`# mcp(outsider)< ${r.isError ? 'ERROR ' + r.content[0].text : short(r.structuredContent)}`);
			return r;
		});
	} finally {
		await c.close();
	}
}

async function main() {
	if (T === 'http') {
		let x = await refused(null);
		check(x && x.code === 401 && /Bearer/.test(x.message) && /web token/.test(x.message),
			'a call without a token is refused (401), saying how to get one', x && x.message);
		x = await refused('orch_' + 'A'.repeat(43));
		check(x && x.code === 401 && /not valid/.test(x.message),
			'a call with an unknown token is refused (401)', x && x.message);
	}
	// --- initialise, list the tools ---
	await client.connect(transport(process.env.MCP_TOKEN));
	const info = client.getServerVersion();
	check(info && info.name === 'orchestrator', 'initialize: the server says it is orchestrator', info);
	const caps = client.getServerCapabilities();
	check(caps && caps.tools && caps.resources && caps.resources.subscribe && caps.logging,
		'it offers tools, resources with subscriptions, logging', caps);
	// tools/list pages (the server is started with ORCH_MCP_PAGE=4)
	const tools = [];
	let page = await client.listTools(), pages = 1;
	tools.push(...page.tools);
	while (page.nextCursor && pages < 10) {
		page = await client.listTools({ cursor: page.nextCursor });
		tools.push(...page.tools);
		pages++;
	}
	check(pages === Math.ceil(tools.length / 4), `tools/list comes in pages of 4 (${pages} pages)`);
	const names = tools.map((t) => t.name).sort();
	const want = ['answer_question', 'cancel_project', 'create_project', 'list_projects',
		'project_status', 'send_message', 'show_project', 'usage', 'worker_logs'];
	check(want.every((w) => names.includes(w)), 'tools/list names every tool: ' + names.join(', '));
	check(tools.every((t) => t.description.length > 60 && t.inputSchema.type === 'object' &&
		t.outputSchema && t.outputSchema.type === 'object'),
		'each tool has a description, an input schema and an output schema');
	check(await client.ping().then(() => true, () => false), 'ping answers');

	// --- malformed calls are refused with a useful error ---
	let r = await call('project_status', { project: 7 });
	check(r.isError && /\$\.project: expected string/.test(r.content[0].text) &&
		/"project": string \(required\)/.test(r.content[0].text),
		'malformed arguments: a tool error naming the place and what the tool takes', r.content);
	r = await call('create_project', { idea: 'a good idea', colour: 'red' });
	check(r.isError && /Invalid arguments for create_project: .*colour/.test(r.content[0].text),
		'arguments the schema does not allow are refused', r.content);
	r = await call('project_status', { project: 'term:nobody:99' });
	check(r.isError && /no project 'term:nobody:99'.*list_projects/.test(r.content[0].text),
		'an unknown project: a tool error saying how to name one', r.content);
	let e = await client.callTool({ name: 'no_such_tool', arguments: {} }).then(() => null, (x) => x);
	check(e && e.code === -32602 && /Unknown tool/.test(e.message),
		'an unknown tool is a JSON-RPC error (-32602)', e && e.message);
	e = await client.request({ method: 'resources/read', params: { uri: 'orchestrator://nope' } },
		types.ReadResourceResultSchema).then(() => null, (x) => x);
	check(e && e.code === -32002, 'an unknown resource is a JSON-RPC error (-32002)', e && e.message);
	r = await call('worker_logs', { worker: '../../etc/passwd' });
	check(r.isError && /worker/.test(r.content[0].text), 'a worker id that is a path is refused', r.content);

	// --- a Telegram question nobody here may decide ---
	if (process.env.TG_QUESTION) {
		r = await call('answer_question', { question: Number(process.env.TG_QUESTION), answer: 'approve' });
		const t = r.isError ? r.content[0].text : '';
		check(r.isError && (/ORCH_OPERATORS/.test(t) || /may not decide/.test(t)),
			'an identity not allowed to decide a Telegram question is refused, saying what to configure', r.content);
		r = await call('cancel_project', { project: process.env.TG_PROJECT });
		check(r.isError && /Telegram chat/.test(r.content[0].text),
			'nor may it cancel that chat\'s project', r.content);
	}

	// --- two projects: A runs to the end, B is cancelled ---
	r = await call('create_project', { idea: process.env.IDEA_A });
	const A = r.structuredContent && r.structuredContent.project;
	check(!r.isError && /^term:[^:]+:\d+$/.test(A || ''), 'create_project starts a project: ' + A, r);
	const reportA = `orchestrator://projects/${A}/report`;
	await client.subscribeResource({ uri: reportA });
	r = await call('create_project', { idea: process.env.IDEA_B });
	const B = r.structuredContent && r.structuredContent.project;
	check(!r.isError && B && B !== A, 'a second project: ' + B, r);
	if (process.env.CANARY) {
		// B's idea holds a stored secret's value: no answer may
		const canary = process.env.CANARY;
		const seen = [JSON.stringify(r)];
		seen.push(JSON.stringify(await call('project_status', { project: B }, true)));
		seen.push(JSON.stringify(await call('list_projects', { limit: 100 }, true)));
		const idea = r.structuredContent && r.structuredContent.title;
		check(seen.every((x) => !x.includes(canary)) && /\[redacted/.test(seen.join('')),
			'a secret in the idea never leaves the server: ' + idea, seen.join('\n'));
	}

	// the brainstorm asks a question first: answered in the conversation
	let st = await follow(A, (s) => s.waiting_for_answer && !questionId(s) && s.stage === 'brainstorm',
		'the brainstorm asks');
	check(st && /send_message/.test(st.next), 'project_status says the project waits for a reply', st);
	r = await call('show_project', { project: A });
	const conv = (r.structuredContent && r.structuredContent.conversation) || [];
	const last = conv.length ? conv[conv.length - 1] : {};
	check(!r.isError && /library, a command line tool, or both/.test(last.text || ''),
		'show_project: the conversation ends with the brainstorm\'s question', conv);
	r = await call('send_message', { project: A, text: 'Both, standard library only.' });
	check(!r.isError && ['delivered', 'queued'].includes(r.structuredContent.how),
		'send_message answers it: ' + (r.structuredContent && r.structuredContent.how), r);

	// the spec
	st = await follow(A, (s) => questionId(s) > 0 && s.stage === 'spec_review', 'the spec is asked for');
	const specQ = questionId(st);
	// the waiting question is told while it waits (the watcher looks every ORCH_MCP_POLL)
	const told = (l) => l.data && l.data.project === A && l.data.open_questions &&
		l.data.open_questions.some((q) => q.id === specQ);
	for (let i = 0; i < 50 && !logs.some(told); i++)
		await sleep(100);
	const note = logs.find(told);
	check(note && /waits for an answer/.test(note.data.text),
		'notified: the spec question waits (' + (note && note.data.text.slice(0, 80)) + '…)',
		logs.map((l) => l.data && l.data.text));
	check(specQ > 0 && st.open_questions[0].answers.some((a) => a.id === 'approve'),
		'the spec question, with its answers, and next names answer_question', st);
	if (process.env.MCP_TOKEN_OUTSIDER) {
		await as(process.env.MCP_TOKEN_OUTSIDER, async (c2) => {
			let o = await c2('answer_question', { question: specQ, answer: 'approve' });
			check(o.isError && /may not decide/.test(o.content[0].text) &&
				/Telegram user 999/.test(o.content[0].text),
				'a token of an identity not allowed to decide is refused, saying why', o.content);
			o = await c2('cancel_project', { project: A });
			check(o.isError && /neither/.test(o.content[0].text),
				'nor may it cancel the project', o.content);
			o = await c2('project_status', { project: A });
			check(!o.isError && o.structuredContent.stage === 'spec_review', 'it may read it');
		});
	}
	r = await call('answer_question', { question: specQ, answer: 'approve' });
	check(!r.isError && r.structuredContent.outcome === 'decided' &&
		/^mcp:/.test(r.structuredContent.decided_by), 'answer_question approves the spec', r);
	r = await call('answer_question', { question: specQ, answer: 'reject' });
	check(r.isError && /Already decided/.test(r.content[0].text),
		'a question is decided once: a second answer is refused', r.content);
	const spec = await client.readResource({ uri: `orchestrator://projects/${A}/spec` });
	check(/"name":"strkit"/.test(spec.contents[0].text), 'the spec resource holds the spec', spec);

	// B waits for its person too: cancelled
	st = await follow(B, (s) => s.waiting_for_answer, 'B waits for its person');
	r = await call('cancel_project', { project: B });
	check(!r.isError && r.structuredContent.runs >= 0, 'cancel_project cancels B', r);
	r = await call('project_status', { project: B });
	check(!r.isError && r.structuredContent.stage === 'cancelled', 'B reads cancelled', r.structuredContent);

	// the plan
	st = await follow(A, (s) => questionId(s) > 0 && s.stage === 'plan_review', 'the plan is asked for');
	check(st && /answer_question/.test(st.next), 'the plan question: ' + (st && st.open_questions[0].question.slice(0, 60)), st);
	r = await call('answer_question', { project: A, answer: 'approve' });
	check(!r.isError && r.structuredContent.outcome === 'decided', 'answer_question (by project) approves the plan', r);

	// the work, to the end
	st = await follow(A, (s) => s.stage === 'done' || s.run === 'failed', 'the project is done');
	check(st && st.stage === 'done' && st.tasks.merged === 3, 'A is done: 3 tasks merged', st);
	const rep = await client.readResource({ uri: reportA });
	check(/"stage":"done"/.test(rep.contents[0].text), 'the report resource says done');
	for (let i = 0; i < 20 && !updates.includes(reportA); i++)
		await sleep(200);
	check(updates.includes(reportA), `notifications: the subscribed report was updated (${updates.length} updates)`);
	const done = (l) => l.data && l.data.project === A && /stage \S+ -> done/.test(l.data.text);
	for (let i = 0; i < 50 && !logs.some(done); i++)
		await sleep(100);
	check(logs.some(done),
		`notifications: stage changes were told, to done (${logs.length} messages)`,
		logs.map((l) => l.data && l.data.text));
	check(listChanged.length >= 1, 'the resource list was said to change when projects started');

	r = await call('show_project', { project: A });
	const sh = r.structuredContent || {};
	const worker = (sh.workers || []).find((w) => w.mode === 'work' && w.status === 'done');
	check(!r.isError && worker && sh.questions.length >= 2, 'show_project: questions and workers', sh.workers);
	check(sh.next_cursor && sh.events.length === 4 && sh.events_total > 4,
		`show_project: the events come in pages (${sh.events_total} events)`, sh.events_total);
	if (sh.next_cursor) {
		r = await call('show_project', { project: A, cursor: sh.next_cursor });
		check(!r.isError && r.structuredContent.events.length > 0 &&
			JSON.stringify(r.structuredContent.events[0]) !== JSON.stringify(sh.events[0]),
			'show_project: the next page of events', r.structuredContent.events);
	}
	const ent = [];
	let cursor;
	for (let i = 0; i < 20; i++) {
		r = await call('worker_logs', cursor ? { worker: worker ? worker.id : 'none', cursor }
			: { worker: worker ? worker.id : 'none' });
		if (r.isError)
			break;
		ent.push(...r.structuredContent.entries);
		cursor = r.structuredContent.next_cursor;
		if (!cursor)
			break;
	}
	check(!r.isError && ent.some((x) => x.type === 'step') && ent.some((x) => x.type === 'result'),
		`worker_logs, page by page: the agent's steps and the result (${ent.length} entries)`, r);
	r = await call('usage', { project: A });
	check(!r.isError && r.structuredContent.calls > 0 && r.structuredContent.cost_usd > 0 &&
		r.structuredContent.by_role.length >= 3, 'usage: calls, tokens and cost by role', r);
	r = await call('list_projects', { limit: 1 });
	const p1 = r.structuredContent;
	r = p1 && p1.next_cursor ? await call('list_projects', { limit: 1, cursor: p1.next_cursor }) : r;
	check(p1 && p1.projects.length === 1 && p1.total >= 2 && p1.next_cursor &&
		r.structuredContent.projects.length === 1 &&
		r.structuredContent.projects[0].project !== p1.projects[0].project,
		'list_projects pages with a cursor', [p1, r.structuredContent]);
	r = await call('list_projects', { cursor: 'forged' });
	check(r.isError && /cursor/.test(r.content[0].text), 'a forged cursor is refused');

	// --- a change to an existing repository ---
	r = await call('create_project', { idea: 'add a --version flag', branch: 'main' });
	check(r.isError && /go with repo/.test(r.content[0].text), 'branch without repo is refused', r.content);
	if (T === 'http') {
		r = await call('create_project', { idea: 'add a --version flag', repo: process.env.CHANGE_REPO });
		check(r.isError && /over HTTP a repository is named by its URL/.test(r.content[0].text),
			'over HTTP a local path is refused, saying to give a URL or use stdio', r.content);
	} else {
		r = await call('create_project', { idea: 'add a --version flag', repo: process.env.CHANGE_REPO + '/nope' });
		check(r.isError && /does not exist/.test(r.content[0].text),
			'a path that is no repository is refused, saying what to give', r.content);
		r = await call('create_project', { idea: 'add a --version flag', repo: process.env.CHANGE_REPO,
			branch: 'main' });
		const C = r.structuredContent && r.structuredContent.project;
		check(!r.isError && /copies the repository/.test(r.structuredContent.next),
			'create_project with a local repo starts a change: ' + C, r);
		r = await call('cancel_project', { project: C || 'none' });
		check(!r.isError, 'and the change is cancelled', r.content);
	}
	const res = await client.listResources();
	check(res.resources.some((x) => x.uri === reportA) &&
		res.resources.some((x) => x.uri === `orchestrator://projects/${A}/spec`),
		'resources/list lists the projects\' reports and specs');
	const tpl = await client.listResourceTemplates();
	check(tpl.resourceTemplates.length === 2, 'two resource templates');
	if (T === 'http') {
		const t = client.transport;
		check(t.sessionId && t.protocolVersion === '2025-11-25',
			`the HTTP session: ${t.sessionId && t.sessionId.slice(0, 8)}…, protocol ${t.protocolVersion}`);
		await t.terminateSession();
		check(t.sessionId === undefined, 'the session is ended (DELETE)');
	}
	await client.close();
}

try {
	await main();
} catch (x) {
	check(false, 'the client ran to its end', x && x.stack ? x.stack : String(x));
	try { await client.close(); } catch (_) { /* gone */ }
}
console.log(`# ${n - failed} of ${n} passed`);
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
