// The page's strings in English and Simplified Chinese. A string with {name} placeholders is
// filled by `t(key, values)`. The language follows navigator.language until the player picks
// one, which is remembered in localStorage (it is not a secret).

const STRINGS = {
  en: {
    title: "Rock · Paper · Scissors",
    tagline: "Play the computer, or a person in real time.",
    language: "Language",
    start_guest: "Play as a guest",
    start_hint: "One click, no sign-up. Your guest account lives for this browser tab.",
    signed_in_as: "Signed in as {name}",
    sign_out: "Sign out",
    vs_computer: "Against the computer",
    vs_computer_hint: "Press R, P or S, or pick a move.",
    rock: "Rock",
    paper: "Paper",
    scissors: "Scissors",
    you_chose: "You: {you} · Computer: {them}",
    win: "You win!",
    lose: "You lose.",
    tie: "It's a tie.",
    tally: "Won {wins} · Lost {losses} · Tied {ties}",
    fairness: "Provably fair",
    fairness_hint: "The server committed to its seed before you played: SHA-256 {hash}. Verify reveals the seed and recomputes every computer move here, in your browser.",
    verify: "Verify fairness",
    verifying: "Revealing the seed and checking…",
    verified: "Verified: {count} of {count} computer moves follow from the revealed seed, whose SHA-256 matches the commitment.",
    verify_nothing: "Play a round first, then verify.",
    verify_failed: "Verification FAILED: {reason}",
    match: "Real-time match",
    match_hint: "Best of N against a person or a bot, 10 seconds a round.",
    mode: "Match length",
    best_of: "Best of {n}",
    opponent: "Opponent",
    opponent_any: "Anyone (a bot after 5 s)",
    opponent_human: "A person",
    opponent_bot: "A bot",
    queue: "Find a match",
    cancel: "Cancel",
    connecting: "Connecting…",
    queued: "Looking for an opponent…",
    matched: "Matched with {name}",
    bot: "bot",
    round: "Round {round}",
    seconds_left: "{s} s left",
    pick_move: "Pick your move: R, P or S.",
    you_locked: "You locked in {move}. Waiting for {name}…",
    opponent_locked: "{name} has locked in.",
    revealed: "Round {round}: you {you}, {name} {them}. {outcome}",
    round_won: "You take the round.",
    round_lost: "{name} takes the round.",
    round_tied: "Tied round.",
    score: "{you} – {them}",
    match_won: "You won the match {score}!",
    match_lost: "You lost the match {score}.",
    match_void: "No contest.",
    rating: "Rating {before} → {after}",
    play_again: "Play another match",
    opponent_away: "{name} disconnected; the match goes on.",
    opponent_back: "{name} is back.",
    resumed: "Reconnected to your match.",
    chat: "Chat",
    chat_placeholder: "Say something nice",
    send: "Send",
    you: "You",
    error: "Something went wrong: {message}",
    connection_lost: "Connection lost, reconnecting…",
  },
  "zh-CN": {
    title: "石头 · 剪刀 · 布",
    tagline: "和电脑玩，或与真人实时对战。",
    language: "语言",
    start_guest: "以游客身份开始",
    start_hint: "一键开始，无需注册。游客账号保存在此浏览器标签页中。",
    signed_in_as: "当前身份：{name}",
    sign_out: "退出",
    vs_computer: "对战电脑",
    vs_computer_hint: "按 R、P 或 S 键，或点击选择出招。",
    rock: "石头",
    paper: "布",
    scissors: "剪刀",
    you_chose: "你：{you} · 电脑：{them}",
    win: "你赢了！",
    lose: "你输了。",
    tie: "平局。",
    tally: "胜 {wins} · 负 {losses} · 平 {ties}",
    fairness: "可证明公平",
    fairness_hint: "服务器在你出招前已承诺其种子：SHA-256 {hash}。点击验证将公开种子，并在你的浏览器中重新计算电脑的每一步。",
    verify: "验证公平性",
    verifying: "正在公开种子并校验…",
    verified: "验证通过：{count} 步电脑出招全部由公开的种子算出，且种子的 SHA-256 与承诺一致。",
    verify_nothing: "请先玩一局再验证。",
    verify_failed: "验证失败：{reason}",
    match: "实时对战",
    match_hint: "与真人或机器人进行 N 局多胜制对战，每回合 10 秒。",
    mode: "对战局数",
    best_of: "{n} 局 {w} 胜",
    opponent: "对手",
    opponent_any: "任何人（5 秒后匹配机器人）",
    opponent_human: "真人",
    opponent_bot: "机器人",
    queue: "开始匹配",
    cancel: "取消",
    connecting: "正在连接…",
    queued: "正在寻找对手…",
    matched: "已匹配：{name}",
    bot: "机器人",
    round: "第 {round} 回合",
    seconds_left: "剩余 {s} 秒",
    pick_move: "请出招：R、P 或 S。",
    you_locked: "你已锁定{move}，等待 {name}…",
    opponent_locked: "{name} 已锁定出招。",
    revealed: "第 {round} 回合：你出{you}，{name} 出{them}。{outcome}",
    round_won: "你赢下本回合。",
    round_lost: "{name} 赢下本回合。",
    round_tied: "本回合平局。",
    score: "{you} – {them}",
    match_won: "你以 {score} 赢得比赛！",
    match_lost: "你以 {score} 输掉比赛。",
    match_void: "比赛无效。",
    rating: "积分 {before} → {after}",
    play_again: "再来一场",
    opponent_away: "{name} 已断开连接，比赛继续。",
    opponent_back: "{name} 已重新连接。",
    resumed: "已重新连接到你的比赛。",
    chat: "聊天",
    chat_placeholder: "友好交流",
    send: "发送",
    you: "你",
    error: "出错了：{message}",
    connection_lost: "连接已断开，正在重连…",
  },
};

export const LANGUAGES = [
  ["en", "English"],
  ["zh-CN", "简体中文"],
];

let current = "en";

/** The language for `preferred` (a BCP 47 tag such as navigator.language). */
export function pickLanguage(preferred) {
  const tag = String(preferred || "").toLowerCase();
  return tag.startsWith("zh") ? "zh-CN" : "en";
}

export function setLanguage(language) {
  current = STRINGS[language] ? language : "en";
  document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
}

export function t(key, values = {}) {
  const template = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** Fills every element carrying data-i18n (text) or data-i18n-placeholder. */
export function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  document.title = t("title");
}
