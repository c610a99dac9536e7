// The dashboard in a real browser (Debian's chromium, driven by
// playwright-core from npm), as a person uses it while a project runs on the
// fake model: log in, answer the project's questions from the page, change a
// role's model, set a budget, follow a worker's live log, read a merged
// task's diff; refused without a session and with a stale CSRF token.
// Screenshots go to SHOTS and are checked not blank.
//
// Environment: URL (the listener), TOKEN (admin, Telegram approver),
// TOKEN_RO (another person's token, not admin), PROJECT (its key), SHOTS,
// CHROMIUM, PW_DIR (the folder holding node_modules/playwright-core),
// ALT_ENDPOINT (the endpoint the new model goes on).
// Prints "# ok N - what" / "# not ok N - what" lines and a last line
// "# browser: N passed, M failed"; exits 1 when any failed.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

const env = process.env;
const require = createRequire(path.join(env.PW_DIR, "package.json"));
const { chromium } = require("playwright-core");

let n = 0, failed = 0;
function check(ok, what, detail) {
  n++;
  if (!ok) failed++;
  console.log(`# ${ok ? "ok" : "not ok"} ${n} - ${what}${!ok && detail ? ": " + detail : ""}`);
  return ok;
}

/* Decodes a PNG (8-bit RGB or RGBA, not interlaced) and counts its
 * distinct colours: a blank page has one or two. */
function pngColours(file) {
  const b = fs.readFileSync(file);
  let off = 8, w = 0, h = 0, depth = 0, ctype = 0;
  const idat = [];
  while (off < b.length) {
    const len = b.readUInt32BE(off), type = b.toString("ascii", off + 4, off + 8);
    const data = b.subarray(off + 8, off + 8 + len);
    if (type === "IHDR") { w = data.readUInt32BE(0); h = data.readUInt32BE(4); depth = data[8]; ctype = data[9]; }
    if (type === "IDAT") idat.push(data);
    off += 12 + len;
  }
  if (depth !== 8 || (ctype !== 2 && ctype !== 6)) return -1;
  const bpp = ctype === 6 ? 4 : 3, stride = w * bpp;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const cur = Buffer.alloc(stride), prev = Buffer.alloc(stride);
  const seen = new Set();
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp] : 0, up = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      let p = line[i];
      if (f === 1) p += a; else if (f === 2) p += up; else if (f === 3) p += (a + up) >> 1;
      else if (f === 4) { const pa = Math.abs(up - c), pb = Math.abs(a - c), pc = Math.abs(a + up - 2 * c);
        p += pa <= pb && pa <= pc ? a : pb <= pc ? up : c; }
      cur[i] = p & 255;
    }
    for (let x = 0; x < w && seen.size < 5000; x += 3) seen.add((cur[x * bpp] << 16) | (cur[x * bpp + 1] << 8) | cur[x * bpp + 2]);
    cur.copy(prev);
  }
  return seen.size;
}

async function shot(page, name) {
  const file = path.join(env.SHOTS, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  const colours = pngColours(file);
  check(colours > 20, `screenshot ${name}.png is not blank (${colours} colours)`);
}

async function until(what, fn, ms) {
  const end = Date.now() + (ms || 60000);
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e.message; }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(what + ": timed out (" + String(last).slice(0, 300) + ")");
}

/* a fresh profile (--user-data-dir) for every run */
const ctx = await chromium.launchPersistentContext(path.join(env.SHOTS, "profile"), {
  executablePath: env.CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(20000);
  const project = env.PROJECT;

  /* without a session: the API refuses, the page asks for a token */
  let r = await fetch(env.URL + "/api/status");
  check(r.status === 401, "the API without a session answers 401", r.status);
  r = await fetch(env.URL + "/api/models", { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } });
  check(r.status === 401, "a change without a session answers 401", r.status);
  await page.goto(env.URL + "/");
  await page.waitForSelector("#login:not([hidden])");
  check(await page.isVisible("#token"), "the page without a session shows the login form");
  const hdr = (await fetch(env.URL + "/")).headers;
  check((hdr.get("content-security-policy") || "").includes("default-src 'self'") && hdr.get("x-frame-options") === "DENY",
    "pages carry a strict Content-Security-Policy and no framing");
  await page.fill("#token", "orch_" + "x".repeat(43));
  await page.click("#login button[type=submit]");
  await page.waitForFunction(() => document.getElementById("login-err").textContent.length > 0);
  check((await page.textContent("#login-err")).includes("not valid"), "a wrong token is refused with the reason");
  await shot(page, "login");

  /* log in */
  await page.fill("#token", env.TOKEN);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#projects");
  const cookies = await ctx.cookies();
  const sess = cookies.find((c) => c.name === "orch_session");
  check(sess && sess.httpOnly && sess.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict",
    JSON.stringify(sess));
  check(!(await page.content()).includes(env.TOKEN), "the token is nowhere in the page");
  const row = await until("the project is listed", async () => page.$(`tr[data-project="${project}"]`), 30000);
  check(!!row, "the project is listed with its stage");
  await shot(page, "projects");

  /* a role's model changed from the page: a new model, then the architect uses it */
  await page.click('a[data-view="models"]');
  await page.waitForSelector("#roles");
  await page.selectOption("#edit-kind", "model");
  await page.fill("#edit-name", "alt");
  await page.fill("#edit-json", JSON.stringify({ endpoint: env.ALT_ENDPOINT, model: "m-alt", context: 200000,
    max_output: 4096, price_in: 3, price_out: 6 }));
  await page.click("#edit-save");
  await page.waitForFunction(() => /Stored as version|Refused/.test(document.getElementById("models-result").textContent));
  check((await page.textContent("#models-result")).includes("Stored as version"), "a new model is stored from the page",
    await page.textContent("#models-result"));
  await page.waitForSelector('select[data-role="architect"] option[value="alt"]', { state: "attached", timeout: 10000 });
  /* a bad change is refused with its reason and stores nothing */
  await page.fill("#edit-name", "bad");
  await page.fill("#edit-json", JSON.stringify({ endpoint: "nowhere", model: "x" }));
  await page.click("#edit-save");
  await page.waitForFunction(() => /Refused/.test(document.getElementById("models-result").textContent));
  check((await page.textContent("#models-result")).includes("endpoint 'nowhere' is not defined"),
    "a bad change is refused with the reason", await page.textContent("#models-result"));
  await page.selectOption('select[data-role="architect"]', "alt");
  await page.click('button[data-set-role="architect"]');
  await page.waitForFunction(() => /Stored as version|Refused/.test(document.getElementById("models-result").textContent));
  check((await page.textContent("#models-result")).includes("Stored as version"), "the architect's model is changed from the page",
    await page.textContent("#models-result"));
  await page.waitForSelector('tr[data-role-row="architect"] td:nth-child(2):has-text("alt")', { timeout: 10000 });
  await shot(page, "models");

  /* a stale CSRF token: the one of a session that was logged out */
  const oldCsrf = await page.evaluate(() => S.session.csrf);
  r = await page.evaluate(async () => (await fetch("/api/budgets", { method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": "0".repeat(48) },
    body: JSON.stringify({ kind: "project", scope: "x", limit: 1 }) })).status);
  check(r === 403, "a change with a forged CSRF token is refused", r);
  await page.click("#logout");
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#token", env.TOKEN);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#projects");
  r = await page.evaluate(async (csrf) => {
    const res = await fetch("/api/budgets", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ kind: "project", scope: "x", limit: 1 }) });
    return [res.status, (await res.json()).error];
  }, oldCsrf);
  check(r[0] === 403 && /stale/.test(r[1]), "a change with the CSRF token of a logged-out session is refused", r);

  /* a budget set from the page */
  await page.click('a[data-view="budgets"]');
  await page.waitForSelector("#budget-save");
  await page.selectOption("#budget-kind", "project");
  await page.fill("#budget-scope", project);
  await page.fill("#budget-limit", "40");
  await page.selectOption("#budget-per", "month");
  await page.click("#budget-save");
  await page.waitForSelector(`tr[data-budget="project:${project}"]`, { timeout: 10000 });
  check(true, "a budget is set from the page");

  /* someone without --admin cannot change models */
  r = await fetch(env.URL + "/api/models", { method: "POST", headers: { Authorization: "Bearer " + env.TOKEN_RO,
    "Content-Type": "application/json" }, body: JSON.stringify({ kind: "role", name: "architect", value: ["alt"] }) });
  check(r.status === 403, "a token without --admin may not change models", r.status);

  /* the project: its spec question answered from the page */
  await page.goto(env.URL + "/#/p/" + encodeURIComponent(project));
  const specQ = await until("the spec question is on the project page", async () => {
    await page.reload(); await page.waitForSelector("#stages");
    return page.$('.question button[data-option="approve"]');
  }, 60000);
  if (specQ) {
    await shot(page, "question");
    await page.click('.question button[data-option="approve"]');
    await page.waitForSelector(".question .note", { timeout: 15000 });
    check((await page.textContent(".question .note")).includes("Answered"), "the spec is approved from the page");
  }
  /* the plan (made by the model the page chose), approved from the page */
  const planQ = await until("the plan question comes", async () => {
    await page.reload(); await page.waitForSelector("#stages");
    const q = await page.$('.question button[data-option="approve"]');
    const txt = q ? await page.textContent(".question") : "";
    return /plan|task/i.test(txt) && q;
  }, 90000);
  if (planQ) {
    check(await page.$("#task-graph g.task"), "the plan's tasks are drawn");
    await page.click('.question button[data-option="approve"]');
    await page.waitForSelector(".question .note", { timeout: 15000 });
    check(true, "the plan is approved from the page");
  }
  /* a worker's live log */
  const follow = await until("a worker runs", async () => {
    await page.reload(); await page.waitForSelector("#stages");
    return page.$("#workers button.follow");
  }, 90000);
  if (follow) {
    await follow.click();
    const got = await until("live lines arrive", async () =>
      (await page.$$("#worker-log .line")).length >= 2, 60000);
    check(!!got, "the worker's live log shows its lines as they come");
    await shot(page, "worker-log");
  }
  /* the project moves to its end: every task merged, the graph coloured */
  const done = await until("the project is done", async () => {
    await page.reload(); await page.waitForSelector("#stages");
    return page.$('#stages span.now[data-stage="done"]');
  }, 180000);
  check(!!done, "the project moved through its stages to done");
  check((await page.$$('#task-graph g.task[data-status="merged"]')).length >= 3, "every task is drawn merged");
  await page.click('button[data-diff="slug"]');
  await page.waitForFunction(() => document.getElementById("diff").textContent.length > 0);
  check((await page.textContent("#diff")).includes("slug.py"), "a merged task's diff is shown");
  check(await page.$("#cost-time polyline") && await page.$("#cost-role rect"), "cost charts are drawn");
  await shot(page, "project");
  await page.click('a[data-view="engine"]');
  await page.waitForSelector("#runs-chart");
  await shot(page, "engine");
} catch (e) {
  check(false, "the browser session", e.stack || String(e));
} finally {
  await ctx.close();
}
console.log(`# browser: ${n - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
