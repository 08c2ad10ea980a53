// The web page in a real Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// guest play against the computer with the fairness check, keyboard-only play, a best-of-3
// between two browser contexts with chat and a reload mid-round, the Chinese locale, an axe-core
// scan, and the CSP refusing an injected inline script. scripts/browser-test starts the server
// and sets BASE_URL; screenshots go to SCREENSHOT_DIR.

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
  assert.deepEqual([...ann.problems, ...bo.problems], []);
  await ann.context.close();
  await bo.context.close();
});
