// The web page in a real Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// guest play against the computer with the fairness check, keyboard-only play, a best-of-3
// between two browser contexts with chat and a reload mid-round, registering, signing in and
// out, a guest keeping its account, the record with its charts and the leaderboards, the
// session cookie out of scripts' reach, the Chinese locale (every string in both languages), an
// axe-core scan of each screen, and the CSP refusing an injected inline script.
// scripts/browser-test starts the server and sets BASE_URL; screenshots go to SCREENSHOT_DIR.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const BASE_URL = process.env.BASE_URL;
const SHOTS = process.env.SCREENSHOT_DIR || "screenshots";
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
let browser;

before(async () => {
  assert.ok(BASE_URL, "BASE_URL names the server under test");
  fs.mkdirSync(SHOTS, { recursive: true });
  // playwright-core gives every launch a fresh temporary profile (its own --user-data-dir).
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    ],
  });
});

after(async () => {
  await browser?.close();
});

async function open(options = {}) {
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1200, height: 900 }, ...options });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(String(error)));
  await page.goto(BASE_URL);
  await page.waitForSelector("body[data-ready=true]");
  return { context, page, problems };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function startAsGuest(page) {
  await page.click("#guest");
  await page.waitForSelector("#game:not([hidden])");
}

/** A username no earlier run has taken (the server may outlive one run's accounts). */
function freshName(prefix) {
  return `${prefix}_${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`.slice(0, 24);
}

async function register(page, username, password) {
  await page.fill("#register-username", username);
  await page.fill("#register-password", password);
  await page.click("#register-form button[type=submit]");
  await page.waitForSelector("#game:not([hidden])");
}

async function signIn(page, username, password) {
  await page.fill("#sign-in-username", username);
  await page.fill("#sign-in-password", password);
  await page.click("#sign-in-form button[type=submit]");
}

async function signOut(page) {
  await Promise.all([page.waitForEvent("load"), page.click("#sign-out")]);
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForSelector("#start:not([hidden])");
}

async function playRounds(page, moves) {
  const before = await page.locator("#history li").count();
  for (const [i, move] of moves.entries()) {
    await page.click(`#computer-moves button[data-move=${move}]`);
    await page.waitForFunction((n) => document.querySelectorAll("#history li").length >= n, Math.min(8, before + i + 1));
  }
}

async function axe(page, label) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(" ")})`), [], label);
}

test("the page is served with a strict CSP, ETag revalidation and compression", async () => {
  const response = await fetch(BASE_URL, { headers: { "accept-encoding": "br" } });
  assert.equal(response.status, 200);
  const csp = response.headers.get("content-security-policy");
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.equal(response.headers.get("content-encoding"), "br");
  const again = await fetch(BASE_URL, {
    headers: { "accept-encoding": "br", "if-none-match": response.headers.get("etag") },
  });
  assert.equal(again.status, 304);
});

test("a guest plays the computer and verifies the fairness proof in the browser", async () => {
  const { context, page, problems } = await open();
  await shot(page, "01-start");
  await axe(page, "start screen");
  await startAsGuest(page);
  for (const move of ["rock", "paper", "scissors"]) {
    await page.click(`#computer-moves button[data-move=${move}]`);
    await page.waitForFunction((n) => document.querySelectorAll("#history li").length === n, [
      "rock", "paper", "scissors"].indexOf(move) + 1);
  }
  await page.click("#verify");
  await page.waitForSelector("#verify-result[data-state=ok]");
  assert.match(await page.textContent("#verify-result"), /3 of 3/);
  await shot(page, "02-computer-verified");
  await axe(page, "game screen");
  assert.deepEqual(problems, []);
  await context.close();
});

test("the CSP blocks an injected inline script", async () => {
  const { context, page } = await open();
  const outcome = await page.evaluate(() => new Promise((resolve) => {
    document.addEventListener("securitypolicyviolation", (e) => resolve({ blocked: e.violatedDirective, ran: window.injected === true }));
    const script = document.createElement("script");
    script.textContent = "window.injected = true";
    document.body.append(script);
    setTimeout(() => resolve({ blocked: null, ran: window.injected === true }), 2000);
  }));
  assert.equal(outcome.ran, false);
  assert.match(outcome.blocked, /script-src/);
  await context.close();
});

test("keyboard only: start, play the computer with r/p/s, verify, and a match against a bot", async () => {
  const { context, page, problems } = await open();
  const tabTo = async (selector) => {
    for (let i = 0; i < 40; i += 1) {
      if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
      await page.keyboard.press("Tab");
    }
    assert.fail(`Tab never reached ${selector}`);
  };
  await tabTo("#guest");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#game:not([hidden])");
  for (const key of ["r", "p", "s", "r"]) await page.keyboard.press(key);
  await page.waitForFunction(() => document.querySelectorAll("#history li").length === 4);
  await tabTo("#verify");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#verify-result[data-state=ok]");
  await tabTo("#mode");
  await page.keyboard.press("Home"); // best of 1
  await tabTo("#opponent");
  await page.keyboard.press("End"); // a bot
  await tabTo("#queue");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#arena:not([hidden])", { timeout: 15000 });
  const deadline = Date.now() + 60000;
  while (await page.isHidden("#final")) {
    assert.ok(Date.now() < deadline, "the bot match did not end");
    if (await page.evaluate(() => document.getElementById("arena").dataset.round)) {
      await page.keyboard.press("s");
    }
    await page.waitForTimeout(200);
  }
  await shot(page, "03-keyboard-bot-match");
  assert.deepEqual(problems, []);
  await context.close();
});

test("Chinese is chosen from the browser's language and English can be switched to", async () => {
  const { context, page } = await open({ locale: "zh-CN" });
  assert.equal(await page.getAttribute("html", "lang"), "zh-CN");
  assert.equal((await page.textContent("#guest")).trim(), "以游客身份开始");
  await startAsGuest(page);
  await page.click("#computer-moves button[data-move=rock]");
  await page.waitForSelector("#computer-result strong");
  await shot(page, "04-chinese");
  await axe(page, "Chinese game screen");
  await page.selectOption("#language", "en");
  assert.equal((await page.textContent("#computer-title")).trim(), "Against the computer");
  await context.close();
});

test("two people play a best-of-3 with chat; one reloads mid-round and resumes; both see one result", async () => {
  const ann = await open();
  const bo = await open({ viewport: { width: 390, height: 844 } }); // a phone
  for (const { page } of [ann, bo]) {
    await startAsGuest(page);
    await page.selectOption("#mode", "best_of_3");
    await page.selectOption("#opponent", "human");
  }
  await ann.page.click("#queue");
  await ann.page.waitForSelector("#match-status:has-text('Looking')");
  await bo.page.click("#queue");
  for (const { page } of [ann, bo]) await page.waitForSelector("#arena[data-round='1']", { timeout: 15000 });
  const matchId = await ann.page.getAttribute("#arena", "data-match-id");
  assert.equal(await bo.page.getAttribute("#arena", "data-match-id"), matchId);

  await ann.page.fill("#chat-input", "good luck!");
  await ann.page.press("#chat-input", "Enter");
  await bo.page.waitForSelector("#chat-log li:has-text('good luck!')");
  await bo.page.fill("#chat-input", "you too");
  await bo.page.click("#chat-form button");
  await ann.page.waitForSelector("#chat-log li:has-text('you too')");
  await shot(ann.page, "05-match-chat");
  await axe(ann.page, "match screen");

  // Round 1: ann's rock beats bo's scissors.
  await ann.page.click("#match-moves button[data-move=rock]");
  await bo.page.waitForSelector("#lock-them:has-text('✓')");
  await shot(bo.page, "06-opponent-locked-phone");
  await bo.page.click("#match-moves button[data-move=scissors]");
  for (const { page } of [ann, bo]) await page.waitForSelector("#arena[data-round='2']");
  assert.equal(await ann.page.textContent("#score-me"), "1");

  // Round 2: ann moves, bo reloads before moving, resumes and moves.
  await ann.page.click("#match-moves button[data-move=rock]");
  await bo.page.waitForSelector("#lock-them:has-text('✓')");
  await bo.page.reload();
  await bo.page.waitForSelector("body[data-ready=true]");
  await bo.page.waitForSelector("#arena[data-round='2']", { timeout: 10000 });
  assert.equal(await bo.page.textContent("#score-them"), "1");
  assert.equal(await bo.page.textContent("#lock-them"), "✓");
  await bo.page.keyboard.press("s");

  for (const { page } of [ann, bo]) await page.waitForSelector("#final:not([hidden])");
  await shot(ann.page, "07-match-won");
  await shot(bo.page, "08-match-lost-phone");
  for (const { page } of [ann, bo]) {
    assert.equal(await page.getAttribute("#arena", "data-match-id"), matchId);
    assert.equal(await page.getAttribute("#final", "data-score-a"), "2");
    assert.equal(await page.getAttribute("#final", "data-score-b"), "0");
  }
  assert.equal(await ann.page.getAttribute("#final", "data-outcome"), "won");
  assert.equal(await bo.page.getAttribute("#final", "data-outcome"), "lost");
  // The match was rated: both are on this season's rating board, the winner above 1500.
  await ann.page.click("label[for=board-season]");
  await ann.page.waitForSelector("#board-rows tr.me[aria-current=true]");
  await ann.page.waitForSelector("#my-rank:has-text('this season, rated')");
  assert.equal((await ann.page.textContent("#board-score")).trim(), "Rating");
  assert.ok(Number(await ann.page.textContent("#board-rows tr.me td.num")) > 1500);
  assert.match(await ann.page.textContent("#board-caption"), /season of \d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z/);
  assert.deepEqual([...ann.problems, ...bo.problems], []);
  await ann.context.close();
  await bo.context.close();
});

test("every string of the page is in both languages", async () => {
  const { STRINGS } = await import(new URL("../../crates/server/web/i18n.js", import.meta.url));
  const english = Object.keys(STRINGS.en).sort();
  assert.ok(english.length > 100, `${english.length} strings`);
  assert.deepEqual(Object.keys(STRINGS["zh-CN"]).sort(), english);
  // Every value the English text shows, the Chinese shows too (it may show more: "best of 3"
  // reads "3 局 2 胜", three rounds, two wins).
  const placeholders = (value) => new Set(value.match(/\{\w+\}/g) || []);
  for (const [key, text] of Object.entries(STRINGS["zh-CN"])) {
    const chinese = placeholders(text);
    for (const name of placeholders(STRINGS.en[key])) assert.ok(chinese.has(name), `${key} lacks ${name}`);
  }
});

test("register, sign out, and sign in again; refusals are shown from the problem documents", async () => {
  const { context, page, problems } = await open();
  await page.waitForSelector("#start:not([hidden])");
  const username = freshName("ann");
  const password = "a long enough secret";
  await register(page, username, password);
  assert.match(await page.textContent("#who"), new RegExp(username));
  assert.ok(await page.isHidden("#keep-card"), "a registered account has nothing to keep");
  await shot(page, "09-registered");
  await signOut(page);

  // A wrong password: the server's invalid_credentials, in the page's words.
  await signIn(page, username, "not the password");
  await page.waitForSelector("#sign-in-error:has-text('do not match')");
  // A taken username, ignoring case: username_taken, and the field is marked.
  await page.fill("#register-username", username.toUpperCase());
  await page.fill("#register-password", "another long secret");
  await page.click("#register-form button[type=submit]");
  await page.waitForSelector("#register-error:has-text('taken')");
  assert.equal(await page.getAttribute("#register-username", "aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.id), "register-username");
  await shot(page, "10-sign-in-refused");
  await axe(page, "start screen with refusals");

  await signIn(page, username, password);
  await page.waitForSelector("#game:not([hidden])");
  assert.match(await page.textContent("#who"), new RegExp(username));
  assert.deepEqual(problems, []);
  await context.close();
});

test("the session cookie is HttpOnly and SameSite=Strict, and survives a reload and a new tab", async () => {
  const { context, page, problems } = await open();
  await startAsGuest(page);
  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === "gg_session");
  assert.ok(session, `cookies: ${cookies.map((cookie) => cookie.name)}`);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.equal(session.path, "/");
  // Scripts on the page see neither the cookie nor any token.
  const visible = await page.evaluate(() => ({
    cookie: document.cookie,
    stored: JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }),
  }));
  assert.doesNotMatch(visible.cookie, /gg_session/);
  assert.doesNotMatch(visible.stored, /gg[asr]_/, "no token or seed in web storage");
  const who = await page.textContent("#who");
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForSelector("#game:not([hidden])");
  assert.equal(await page.textContent("#who"), who);
  const tab = await context.newPage();
  await tab.goto(BASE_URL);
  await tab.waitForSelector("body[data-ready=true]");
  await tab.waitForSelector("#game:not([hidden])");
  assert.equal(await tab.textContent("#who"), who);
  // A request the page did not make itself (no X-Session) cannot use the cookie to change
  // anything: the CSRF rule refuses it.
  const forged = await page.evaluate(async () => {
    const response = await fetch("/play", { method: "POST", headers: { "Content-Type": "text/plain" }, body: '{"choice":"rock"}' });
    return { status: response.status, code: (await response.json()).code };
  });
  assert.deepEqual(forged, { status: 403, code: "csrf_refused" });
  assert.deepEqual(problems, []);
  await context.close();
});

test("the record, its charts and the leaderboards render after a few games", async () => {
  const { context, page, problems } = await open();
  await startAsGuest(page);
  await playRounds(page, ["rock", "paper", "scissors", "rock", "rock", "paper"]);
  await page.waitForFunction(() => document.querySelectorAll("#trend-chart circle").length === 6, null, { timeout: 10000 });
  const figures = await page.textContent("#figures");
  assert.match(figures, /Rounds\s*6/);
  assert.match(await page.textContent("#match-figures"), /Rating\s*1500\s*± 350/);
  assert.equal(await page.locator("#moves-chart rect").count(), 3);
  assert.match(await page.getAttribute("#moves-chart svg", "aria-label"), /rock 3, paper 2, scissors 1/);
  assert.match(await page.getAttribute("#trend-chart svg", "aria-label"), /last 6 rounds/);
  assert.equal(await page.locator("#games li").count(), 6);
  // Everyone who played in a window is on its board, with 0 wins if need be.
  await page.waitForSelector("#board-rows tr");
  const wins = (await page.textContent("#figures .figure.win dd")).trim();
  await page.waitForSelector(`#my-rank:has-text(' with ${wins} win')`);
  const place = Number((await page.textContent("#my-rank")).match(/number (\d+)/)[1]);
  if (place <= 10) await page.waitForSelector("#board-rows tr.me[aria-current=true]");
  await page.click("label[for=board-day]");
  await page.waitForFunction(() => /Today/.test(document.getElementById("board-caption").textContent));
  // Play against the computer is not on the season's board of matches against people.
  await page.click("label[for=board-season]");
  await page.waitForSelector("#my-rank:has-text('Finish a match against a person')");
  assert.equal((await page.textContent("#board-score")).trim(), "Rating");
  await shot(page, "11-record-and-board");
  await page.locator("#stats-card").screenshot({ path: path.join(SHOTS, "11b-record-card.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "12-record-phone");
  await page.locator("#stats-card").screenshot({ path: path.join(SHOTS, "12b-record-card-phone.png") });
  await page.locator("#board-card").screenshot({ path: path.join(SHOTS, "12c-board-card-phone.png") });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.setViewportSize({ width: 1200, height: 900 });
  await shot(page, "12d-record-dark");
  await axe(page, "record and leaderboard, dark scheme");
  await axe(page, "record and leaderboard");
  assert.deepEqual(problems, []);
  await context.close();
});

test("a guest keeps its account with a username and signs back in to the same record", async () => {
  const { context, page, problems } = await open();
  await startAsGuest(page);
  await playRounds(page, ["scissors", "scissors"]);
  await page.waitForFunction(() => document.querySelectorAll("#trend-chart circle").length === 2, null, { timeout: 10000 });
  const username = freshName("bo");
  await page.fill("#upgrade-username", username);
  await page.fill("#upgrade-password", "a long enough secret");
  await page.click("#upgrade-form button[type=submit]");
  await page.waitForSelector(`#kept:has-text('${username}')`);
  assert.ok(await page.isHidden("#keep-card"));
  await shot(page, "13-account-kept");
  await signOut(page);
  await signIn(page, username, "a long enough secret");
  await page.waitForSelector("#game:not([hidden])");
  await page.waitForFunction(() => document.querySelectorAll("#trend-chart circle").length === 2, null, { timeout: 10000 });
  assert.deepEqual(problems, []);
  await context.close();
});

test("keyboard only: register, play, and change the leaderboard's period", async () => {
  const { context, page, problems } = await open();
  await page.waitForSelector("#start:not([hidden])");
  const tabTo = async (selector) => {
    for (let i = 0; i < 60; i += 1) {
      if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
      await page.keyboard.press("Tab");
    }
    assert.fail(`Tab never reached ${selector}`);
  };
  await tabTo("#register-username");
  await page.keyboard.type(freshName("kay"));
  await tabTo("#register-password");
  await page.keyboard.type("a long enough secret");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#game:not([hidden])");
  await page.keyboard.press("r");
  await page.waitForSelector("#history li");
  await tabTo("#board-all");
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement.id), "board-week");
  await page.waitForFunction(() => /This week/.test(document.getElementById("board-caption").textContent));
  const focus = await page.evaluate(() => getComputedStyle(document.querySelector("#board-week + label")).outlineStyle);
  assert.notEqual(focus, "none", "the focused period is visibly marked");
  assert.deepEqual(problems, []);
  await context.close();
});

test("Chinese renders the account forms, the record and the leaderboard", async () => {
  const { context, page } = await open({ locale: "zh-CN" });
  await page.waitForSelector("#start:not([hidden])");
  assert.equal((await page.textContent("#sign-in-title")).trim(), "登录");
  assert.equal((await page.textContent("#register-title")).trim(), "创建账号");
  await signIn(page, "nobody_here", "wrong password");
  await page.waitForSelector("#sign-in-error:has-text('用户名和密码不匹配')");
  await shot(page, "14-chinese-start");
  await startAsGuest(page);
  await playRounds(page, ["rock", "paper"]);
  await page.waitForFunction(() => document.querySelectorAll("#trend-chart circle").length === 2, null, { timeout: 10000 });
  assert.equal((await page.textContent("#stats-title")).trim(), "你的战绩");
  assert.equal((await page.textContent("#board-title")).trim(), "排行榜");
  assert.equal((await page.textContent("#keep-title")).trim(), "保留此账号");
  assert.match(await page.textContent("#figures"), /局数\s*2/);
  await shot(page, "15-chinese-record");
  await axe(page, "Chinese record screen");
  await context.close();
});
