// The signed-in player's record: stats and latest rounds against the computer
// (GET /players/{id}/stats, /games), the real-time rating and match record (GET /me/matches),
// a chart of the running score and one of the moves played.

import { api, ApiProblem } from "./api.js";
import { barChart, lineChart } from "./chart.js";
import { language, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const ROUNDS_CHARTED = 30;

/** Null when the player has no rounds yet (404 player_not_found); other refusals throw. */
async function orNothing(request) {
  try {
    return await request;
  } catch (error) {
    if (error instanceof ApiProblem && error.code === "player_not_found") return null;
    throw error;
  }
}

/** Everything the record card shows, fetched together. */
export async function loadRecord(accountId) {
  const id = encodeURIComponent(accountId);
  const [stats, games, matches] = await Promise.all([
    orNothing(api("GET", `/players/${id}/stats`)),
    orNothing(api("GET", `/players/${id}/games?limit=${ROUNDS_CHARTED}`)),
    api("GET", "/me/matches"),
  ]);
  return { stats, games: games?.games ?? [], matches };
}

const OUTCOME = { player: "win", computer: "lose", tie: "tie" };

function figure(term, value, className = "", unit = "") {
  const wrap = document.createElement("div");
  wrap.className = `figure ${className}`.trim();
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (unit) {
    const small = document.createElement("span");
    small.className = "unit";
    small.textContent = unit;
    dd.append(small);
  }
  wrap.append(dt, dd);
  return wrap;
}

function percent(rate) {
  return new Intl.NumberFormat(language(), { style: "percent", maximumFractionDigits: 0 }).format(rate || 0);
}

/** Redraws the record card from `record` (from loadRecord). */
export function drawRecord(record) {
  if (!record) return;
  const { stats, games, matches } = record;
  const rating = matches?.rating;
  const figures = [];
  if (stats) {
    figures.push(
      figure(t("figure_rounds"), stats.rounds),
      figure(t("figure_wins"), stats.wins, "win"),
      figure(t("figure_losses"), stats.losses, "lose"),
      figure(t("figure_ties"), stats.ties, "tie"),
      figure(t("figure_win_rate"), percent(stats.win_rate)),
      figure(t("figure_best_streak"), stats.best_streak),
    );
  }
  $("figures").replaceChildren(...figures);
  const matchFigures = [];
  if (rating) {
    matchFigures.push(
      figure(t("figure_rating"), Math.round(rating.rating), "", t("rating_deviation", { deviation: Math.round(rating.deviation) })),
      figure(t("figure_matches"), `${matches.wins}–${matches.losses}`, "", t("won_lost")),
      figure(t("figure_bots"), `${matches.bot_wins}–${matches.bot_losses}`, "", t("won_lost")),
    );
  }
  $("match-figures").replaceChildren(...matchFigures);
  $("no-rounds").hidden = Boolean(stats);
  $("charts").hidden = !stats || games.length === 0;
  $("games-title").hidden = games.length === 0;
  $("games").replaceChildren(...games.slice(0, 6).map(gameItem));
  if (stats && games.length) drawCharts(stats, games);
}

function gameItem(game) {
  const outcome = OUTCOME[game.winner] ?? "tie";
  const item = document.createElement("li");
  item.className = outcome;
  const when = document.createElement("time");
  when.dateTime = game.played_at;
  when.textContent = new Date(game.played_at).toLocaleTimeString(language(), { hour: "2-digit", minute: "2-digit" });
  const moves = document.createElement("span");
  moves.textContent = t("game_line", { you: t(game.player_choice), them: t(game.computer_choice) });
  const result = document.createElement("strong");
  result.textContent = t(outcome);
  item.append(when, moves, result);
  return item;
}

function drawCharts(stats, games) {
  const oldestFirst = [...games].reverse();
  let net = 0;
  const values = [];
  const outcomes = [];
  for (const game of oldestFirst) {
    const outcome = OUTCOME[game.winner] ?? "tie";
    net += outcome === "win" ? 1 : outcome === "lose" ? -1 : 0;
    values.push(net);
    outcomes.push(outcome);
  }
  const n = values.length;
  $("trend-caption").textContent = t("trend_caption", { n });
  const trend = lineChart({
    values,
    outcomes,
    label: t("trend_label", { n, net: signed(net), best: signed(Math.max(...values)) }),
    labels: { start: t("chart_oldest"), end: t("chart_latest") },
  });
  $("trend-chart").replaceChildren(trend);
  const { rock, paper, scissors } = stats.choices;
  const moves = barChart({
    bars: [
      { name: t("rock"), value: rock, className: "rock" },
      { name: t("paper"), value: paper, className: "paper" },
      { name: t("scissors"), value: scissors, className: "scissors" },
    ],
    label: t("moves_label", { rock, paper, scissors }),
  });
  $("moves-chart").replaceChildren(moves);
}

function signed(value) {
  return value > 0 ? `+${value}` : String(value);
}
