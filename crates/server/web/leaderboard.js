// The leaderboards: most wins against the computer (GET /leaderboard), all time, this week or
// today, with the player's own place (GET /players/{id}/rank) under the table; and the current
// season's rating board of real-time matches against people (GET /leaderboard/rating), where
// the player's place is their row, if they are among the shown.

import { api, ApiProblem } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const SHOWN = 10;
const PERIOD = { all: "board_all", week: "board_week", day: "board_day" };

/** The board for `window` and the player's place on it (null when not on it). */
export async function loadBoard(window, accountId) {
  if (window === "season") {
    const board = await api("GET", `/leaderboard/rating?season=current&limit=${SHOWN}`);
    const rank = board.entries.find((entry) => entry.player_id === accountId) ?? null;
    return { window, board, rank };
  }
  const [board, rank] = await Promise.all([
    api("GET", `/leaderboard?window=${window}&limit=${SHOWN}`),
    api("GET", `/players/${encodeURIComponent(accountId)}/rank?window=${window}`).catch((error) => {
      if (error instanceof ApiProblem && error.code === "player_not_found") return null;
      throw error;
    }),
  ]);
  return { window, board, rank };
}

/** Redraws the table from `loaded` (from loadBoard); `accountId` is the player's row. */
export function drawBoard(loaded, accountId) {
  if (!loaded) return;
  const { window, board, rank } = loaded;
  const season = window === "season";
  $("board-caption").textContent = season
    ? t("board_season_caption", { season: board.season.id })
    : t("board_caption", { period: t(PERIOD[window] ?? "board_all") });
  $("board-score").textContent = t(season ? "board_rating" : "board_wins");
  const rows = board.entries.map((entry) => {
    const row = document.createElement("tr");
    const mine = entry.player_id === accountId;
    if (mine) {
      row.className = "me";
      row.setAttribute("aria-current", "true");
    }
    const place = document.createElement("td");
    place.className = "place";
    const chip = document.createElement("span");
    chip.className = `chip chip-${Math.min(entry.rank, 4)}`;
    chip.textContent = String(entry.rank);
    place.append(chip);
    const name = document.createElement("td");
    name.className = "player";
    name.textContent = entry.display_name || `${entry.player_id.slice(0, 8)}…`;
    if (mine) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = t("board_you");
      name.append(" ", you);
    }
    const wins = document.createElement("td");
    wins.className = "num";
    wins.textContent = String(season ? Math.round(entry.rating) : entry.wins);
    row.append(place, name, wins);
    return row;
  });
  if (rows.length === 0) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 3;
    cell.className = "empty";
    cell.textContent = t(season ? "board_season_empty" : "board_empty");
    row.append(cell);
    rows.push(row);
  }
  $("board-rows").replaceChildren(...rows);
  if (season) {
    const placed = rank && t("my_season_rank", { rank: rank.rank, rating: Math.round(rank.rating) });
    $("my-rank").textContent = placed || t("my_season_rank_none");
    return;
  }
  const ranked = rank && t(rank.wins === 1 ? "my_rank_one" : "my_rank", { rank: rank.rank, wins: rank.wins });
  $("my-rank").textContent = ranked || t("my_rank_none");
}
