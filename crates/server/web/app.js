// The page's behaviour: start as a guest, sign in or register, play the computer and verify its
// fairness, play a real-time match, see the player's record and the leaderboards. No framework:
// a few functions that redraw parts of the page from state.
//
// Where the session lives: in an HttpOnly cookie the server sets (api.js), which no script on
// the page can read, so an injected script could act while the page is open but could not take
// the session away. sessionStorage keeps only what is not a credential to the account: the
// account's public view, the fairness commitment being checked, the match being played and its
// resume token (which lets this tab, or a reload of it, rejoin that one match).

import { LANGUAGES, pickLanguage, setLanguage, t, translatePage } from "./i18n.js";
import { verifyPlays } from "./fairness.js";
import { Realtime } from "./realtime.js";
import { api } from "./api.js";
import { explain, wireSignIn, wireUpgrade } from "./account.js";
import { drawRecord, loadRecord } from "./stats.js";
import { drawBoard, loadBoard } from "./leaderboard.js";

const store = window.sessionStorage;
const $ = (id) => document.getElementById(id);
const MOVE_KEYS = { r: "rock", p: "paper", s: "scissors" };

const state = {
  account: readJson("gg.account"),
  tally: { wins: 0, losses: 0, ties: 0 },
  history: [],
  fair: readJson("gg.fair"),
  realtime: null,
  match: readJson("gg.match"),
  round: null,
  score: { a: 0, b: 0 },
  locked: { a: false, b: false },
  myMove: null,
  ended: null,
  result: null,
  queued: false,
  timer: null,
  record: null,
  board: null,
  refreshTimer: null,
};

function readJson(key) {
  try {
    return JSON.parse(store.getItem(key) || "null");
  } catch {
    return null;
  }
}

function writeJson(key, value) {
  if (value === null || value === undefined) store.removeItem(key);
  else store.setItem(key, JSON.stringify(value));
}

function moveName(move) {
  return move ? t(move) : "—";
}

/** Shows `error` (an ApiProblem, an Error, or words) in the page's error line; none clears it. */
function showError(error) {
  if (!error) $("error").textContent = "";
  else $("error").textContent = typeof error === "string" ? t("error", { message: error }) : explain(error);
}

// ---- Session --------------------------------------------------------------------------------

async function startAsGuest() {
  const button = $("guest");
  button.disabled = true;
  try {
    const created = await api("POST", "/accounts/guest");
    await signedIn(created.account);
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

/** A session just began (guest, sign-in, registration): show the game for `account`. */
async function signedIn(account) {
  state.account = account;
  writeJson("gg.account", account);
  showError("");
  showGame();
  $("computer-moves").querySelector("button").focus();
  await loadFairness().catch(showError);
  refreshStanding();
}

async function signOut() {
  if (state.realtime) state.realtime.close();
  // The server clears the cookie (and ends the session) even when it no longer authenticates.
  await api("DELETE", "/sessions/current").catch(() => {});
  store.clear();
  location.reload();
}

// ---- The record and the leaderboards --------------------------------------------------------

async function loadStanding() {
  if (!state.account) return;
  const window = document.querySelector("input[name=board-window]:checked")?.value || "all";
  const [record, board] = await Promise.all([
    loadRecord(state.account.id),
    loadBoard(window, state.account.id),
  ]);
  state.record = record;
  state.board = board;
  drawStanding();
}

function drawStanding() {
  drawRecord(state.record);
  drawBoard(state.board, state.account?.id);
}

/** Reloads the record and the board a little later: results reach the store in batches. */
function refreshStanding(delay = 0) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => loadStanding().catch(showError), delay);
}

// ---- Against the computer -------------------------------------------------------------------

async function loadFairness() {
  const view = await api("GET", "/me/fairness");
  state.fair = { hash: view.server_seed_hash, client_seed: view.client_seed, plays: [] };
  writeJson("gg.fair", state.fair);
  drawFairness();
}

function drawFairness() {
  $("fair-hint").textContent = state.fair ? t("fairness_hint", { hash: state.fair.hash }) : "";
}

async function playComputer(choice) {
  try {
    const answer = await api("POST", "/play", { choice });
    const outcome = { player: "win", computer: "lose", tie: "tie" }[answer.winner];
    state.tally[{ win: "wins", lose: "losses", tie: "ties" }[outcome]] += 1;
    state.history.unshift({ you: answer.player_choice, them: answer.computer_choice, outcome });
    state.history.length = Math.min(state.history.length, 8);
    if (typeof answer.nonce === "number" && state.fair) {
      state.fair.plays.push({ nonce: answer.nonce, computer: answer.computer_choice });
      writeJson("gg.fair", state.fair);
    }
    drawComputer(outcome, answer);
    refreshStanding(250);
  } catch (error) {
    showError(error);
  }
}

function drawComputer(outcome, answer) {
  const result = $("computer-result");
  if (answer) {
    result.dataset.outcome = outcome;
    result.replaceChildren(
      line("strong", t(outcome)),
      line("span", t("you_chose", { you: moveName(answer.player_choice), them: moveName(answer.computer_choice) })),
    );
  }
  $("tally").textContent = t("tally", state.tally);
  $("history").replaceChildren(
    ...state.history.map((entry) => {
      const item = line("li", `${moveName(entry.you)} · ${moveName(entry.them)}`);
      item.className = entry.outcome;
      return item;
    }),
  );
}

function line(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

async function verify() {
  const output = $("verify-result");
  output.dataset.state = "";
  if (!state.fair || state.fair.plays.length === 0) {
    output.textContent = t("verify_nothing");
    return;
  }
  output.textContent = t("verifying");
  try {
    const { hash, plays } = state.fair;
    const view = await api("POST", "/me/fairness/rotation");
    const revealed = (view.revealed || []).find((seed) => seed.server_seed_hash === hash);
    const verdict = revealed
      ? await verifyPlays(hash, plays, revealed)
      : { ok: false, reason: "the server did not reveal the committed seed" };
    output.dataset.state = verdict.ok ? "ok" : "failed";
    output.textContent = verdict.ok
      ? t("verified", { count: verdict.count })
      : t("verify_failed", { reason: verdict.reason });
    state.fair = { hash: view.server_seed_hash, client_seed: view.client_seed, plays: [] };
    writeJson("gg.fair", state.fair);
    drawFairness();
  } catch (error) {
    output.dataset.state = "failed";
    output.textContent = t("verify_failed", { reason: error.message });
  }
}

// ---- Real-time match ------------------------------------------------------------------------

function realtime() {
  if (!state.realtime) {
    state.realtime = new Realtime({
      ticket: async () => (await api("POST", "/realtime/tickets")).ticket,
      onMessage: onRealtimeMessage,
      onState: (connection) => {
        if (connection === "connecting") setStatus(t("connecting"));
        if (connection === "lost") setStatus(t("connection_lost"));
      },
      storage: store,
    });
  }
  return state.realtime;
}

function setStatus(text) {
  $("match-status").textContent = text;
}

async function queue(event) {
  event.preventDefault();
  showError("");
  const connection = realtime();
  state.pendingQueue = { mode: $("mode").value, opponent: $("opponent").value };
  if (!connection.socket || connection.socket.readyState !== WebSocket.OPEN) {
    try {
      await connection.connect();
    } catch {
      showError(t("connection_lost"));
    }
    return; // the queue request goes out after welcome
  }
  sendQueue();
}

function sendQueue() {
  const request = state.pendingQueue;
  if (!request) return;
  state.pendingQueue = null;
  const message = { type: "queue", mode: request.mode, opponent: request.opponent };
  if (request.opponent === "any") message.bot_after_ms = 5000;
  realtime().send(message);
}

function opponentSeat() {
  return state.match?.seat === "a" ? "b" : "a";
}

function opponentName() {
  const opponent = state.match?.opponent;
  if (!opponent) return "?";
  return opponent.kind === "bot" ? `${opponent.name} (${t("bot")})` : opponent.name;
}

function resetMatch(match) {
  state.match = match;
  writeJson("gg.match", match);
  state.round = null;
  state.score = { a: 0, b: 0 };
  state.locked = { a: false, b: false };
  state.myMove = null;
  state.ended = null;
  state.result = null;
  $("chat-log").replaceChildren();
  $("round-status").textContent = "";
}

function onRealtimeMessage(message) {
  switch (message.type) {
    case "welcome":
      setStatus("");
      sendQueue();
      break;
    case "resumed":
      if (message.match_id && state.match?.match_id === message.match_id) {
        resetMatch(state.match);
        setStatus(t("resumed"));
      } else if (message.queued) {
        state.queued = true;
        setStatus(t("queued"));
      }
      sendQueue();
      break;
    case "queued":
      state.queued = true;
      setStatus(t("queued"));
      break;
    case "cancelled":
    case "queue_expired":
      state.queued = false;
      setStatus("");
      break;
    case "matched":
      state.queued = false;
      resetMatch({ match_id: message.match_id, seat: message.seat, mode: message.mode, opponent: message.opponent });
      setStatus(t("matched", { name: opponentName() }));
      break;
    case "event":
      if (state.match && message.match_id === state.match.match_id) onMatchEvent(message.event.kind);
      break;
    case "match_result":
      if (state.match && message.match_id === state.match.match_id) state.result = message;
      refreshStanding(400);
      break;
    case "chat":
      onChat(message);
      break;
    case "error":
    case "warning":
      showError(message.message || message.code);
      break;
    default:
      break;
  }
  drawMatch();
}

function onMatchEvent(kind) {
  const them = opponentName();
  switch (kind.type) {
    case "round_opened":
      state.round = { number: kind.round, deadline: kind.deadline_ms, opened: state.realtime.serverNow() };
      state.locked = { a: false, b: false };
      state.myMove = null;
      break;
    case "locked":
      state.locked[kind.seat] = true;
      if (kind.seat === opponentSeat()) $("round-status").textContent = t("opponent_locked", { name: them });
      break;
    case "round_revealed": {
      const mine = state.match.seat;
      const outcome = kind.winner === "tie" ? t("round_tied") : kind.winner === mine ? t("round_won") : t("round_lost", { name: them });
      state.score = kind.score;
      state.lastReveal = { you: kind.moves[mine], them: kind.moves[opponentSeat()], winner: kind.winner };
      $("round-status").textContent = t("revealed", {
        round: kind.round,
        you: moveName(kind.moves[mine]),
        them: moveName(kind.moves[opponentSeat()]),
        name: them,
        outcome,
      });
      state.round = null;
      break;
    }
    case "match_ended":
      state.score = kind.score;
      state.ended = kind;
      state.round = null;
      writeJson("gg.match", null);
      store.removeItem("gg.resume_token");
      break;
    case "opponent_disconnected":
      $("round-status").textContent = t("opponent_away", { name: them });
      break;
    case "opponent_reconnected":
      $("round-status").textContent = t("opponent_back", { name: them });
      break;
    default:
      break;
  }
}

function onChat(message) {
  const mine = message.from === state.match?.seat;
  const item = document.createElement("li");
  item.className = mine ? "mine" : "theirs";
  item.append(line("b", mine ? t("you") : message.name), line("span", message.text));
  $("chat-log").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function playMatch(choice) {
  if (!state.round || state.myMove) return;
  const sent = realtime().send({ type: "move", round: state.round.number, choice });
  if (sent === null) return;
  state.myMove = choice;
  $("round-status").textContent = t("you_locked", { move: moveName(choice), name: opponentName() });
  drawMatch();
}

function drawMatch() {
  const match = state.match;
  const inMatch = Boolean(match);
  $("arena").hidden = !inMatch;
  $("queue").hidden = state.queued || (inMatch && !state.ended);
  $("cancel").hidden = !state.queued;
  $("queue-form").querySelectorAll("select").forEach((select) => {
    select.disabled = state.queued || (inMatch && !state.ended);
  });
  if (!inMatch) return;
  const mine = match.seat;
  const theirs = opponentSeat();
  $("opponent-name").textContent = opponentName();
  $("score-me").textContent = state.score[mine] ?? 0;
  $("score-them").textContent = state.score[theirs] ?? 0;
  $("lock-me").textContent = state.locked[mine] ? "✓" : "";
  $("lock-them").textContent = state.locked[theirs] ? "✓" : "";
  $("arena").dataset.matchId = match.match_id;
  $("arena").dataset.seat = mine;
  $("arena").dataset.round = state.round && !state.myMove ? String(state.round.number) : "";
  $("round-label").textContent = state.round ? t("round", { round: state.round.number }) : "";
  const open = Boolean(state.round) && !state.myMove && !state.ended;
  $("match-moves").querySelectorAll("button").forEach((button) => {
    button.disabled = !open;
    button.setAttribute("aria-pressed", String(button.dataset.move === state.myMove));
  });
  if (open && !$("round-status").textContent) $("round-status").textContent = t("pick_move");
  drawCountdown();
  const final = $("final");
  final.hidden = !state.ended;
  $("again").hidden = !state.ended;
  if (state.ended) {
    const score = t("score", { you: state.score[mine], them: state.score[theirs] });
    const won = state.ended.outcome?.won;
    let text = won === mine ? t("match_won", { score }) : won === theirs ? t("match_lost", { score }) : t("match_void");
    if (state.result?.rated) {
      text += ` ${t("rating", { before: Math.round(state.result.rating_before), after: Math.round(state.result.rating_after) })}`;
    }
    final.textContent = text;
    final.dataset.scoreA = state.score.a;
    final.dataset.scoreB = state.score.b;
    final.dataset.outcome = won === mine ? "won" : won === theirs ? "lost" : "void";
  }
}

function drawCountdown() {
  clearInterval(state.timer);
  const tick = () => {
    const round = state.round;
    if (!round || state.ended) {
      $("countdown").textContent = "";
      $("countdown-bar").style.setProperty("--left", "0");
      clearInterval(state.timer);
      return;
    }
    const left = Math.max(0, round.deadline - state.realtime.serverNow());
    $("countdown").textContent = t("seconds_left", { s: Math.ceil(left / 1000) });
    $("countdown-bar").style.setProperty("--left", String(Math.min(1, left / 10000)));
  };
  tick();
  if (state.round && !state.ended) state.timer = setInterval(tick, 250);
}

function playAgain() {
  resetMatch(null);
  drawMatch();
  setStatus("");
  $("queue").focus();
}

// ---- Page -----------------------------------------------------------------------------------

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return;
  const move = MOVE_KEYS[event.key.toLowerCase()];
  if (!move || !state.account) return;
  event.preventDefault();
  if (state.round && !state.ended) playMatch(move);
  else playComputer(move);
}

function showGame() {
  const account = state.account;
  $("start").hidden = true;
  $("game").hidden = false;
  $("who").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = t("signed_in_as", { name: account.username || account.display_name });
  if (account.guest) {
    const badge = line("span", t("guest"));
    badge.className = "badge";
    $("who").append(" ", badge);
  }
  $("keep-card").hidden = !account.guest;
}

function showStart() {
  $("start").hidden = false;
  $("game").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
}

function translate() {
  translatePage();
  for (const option of $("mode").options) {
    const n = Number(option.value.split("_").pop());
    option.textContent = t("best_of", { n, w: (n + 1) / 2 });
  }
  if (state.account) showGame();
  drawFairness();
  drawComputer();
  drawMatch();
  drawStanding();
}

/** Whether this browser's cookie still signs someone in: the account, or null. */
async function currentAccount() {
  try {
    return await api("GET", "/me");
  } catch {
    return null;
  }
}

async function init() {
  const select = $("language");
  for (const [code, name] of LANGUAGES) {
    const option = new Option(name, code);
    option.lang = code;
    select.append(option);
  }
  select.value = setLanguage(localStorage.getItem("gg.language") || pickLanguage(navigator.language));
  select.addEventListener("change", () => {
    localStorage.setItem("gg.language", setLanguage(select.value));
    translate();
  });
  $("guest").addEventListener("click", startAsGuest);
  wireSignIn(signedIn);
  wireUpgrade(async (kept) => {
    // The boards show display names: the guest's generated one gives way to the username.
    const account = await api("PATCH", "/me", { display_name: kept.username }).catch(() => kept);
    state.account = account;
    writeJson("gg.account", account);
    showGame();
    refreshStanding();
  });
  $("board-window").addEventListener("change", () => refreshStanding());
  $("sign-out").addEventListener("click", signOut);
  $("verify").addEventListener("click", verify);
  $("computer-moves").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-move]");
    if (button) playComputer(button.dataset.move);
  });
  $("match-moves").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-move]");
    if (button) playMatch(button.dataset.move);
  });
  $("queue-form").addEventListener("submit", queue);
  $("cancel").addEventListener("click", () => realtime().send({ type: "cancel" }));
  $("again").addEventListener("click", playAgain);
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (text && realtime().send({ type: "chat", text }) !== null) input.value = "";
  });
  document.addEventListener("keydown", onKey);
  translate();
  // The cookie is the session: ask the server whom it signs in (this tab may be new).
  const account = await currentAccount();
  if (account) {
    if (state.account?.id !== account.id) {
      for (const key of ["gg.fair", "gg.match", "gg.resume_token"]) store.removeItem(key);
      state.fair = null;
      state.match = null;
    }
    state.account = account;
    writeJson("gg.account", account);
    showGame();
    if (!state.fair) loadFairness().catch(showError);
    refreshStanding();
    // A match or a queue ticket was on when the page was left: pick it up again.
    if (store.getItem("gg.resume_token") || state.match) realtime().connect().catch(() => setStatus(t("connection_lost")));
  } else {
    state.account = null;
    store.clear();
    showStart();
  }
  document.body.dataset.ready = "true";
}

init().catch((error) => {
  showError(error);
  document.body.dataset.ready = "true";
});
