// The page's HTTP. Every request speaks for the cookie session (`X-Session: cookie`): the
// session lives in an HttpOnly cookie the server sets and this page never reads, so a script
// injected into the page could not carry it off (docs/WEB.md). An expired access token (401
// invalid_token) is refreshed once, for every tab of this browser together, and the request
// sent again.

/** A refusal: the API's problem document (RFC 9457), with its stable `code`. */
export class ApiProblem extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code || "";
    this.retryAfter = retryAfter;
  }
}

function send(method, path, body) {
  const headers = { Accept: "application/json", "X-Session": "cookie" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
}

async function read(response) {
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiProblem(response.status, data, Number(response.headers.get("retry-after")) || 0);
  }
  return data;
}

let refreshing = null;

/**
 * Trades the cookie's refresh token for a new cookie. Tabs share the cookie, and a refresh
 * token presented twice ends the session (theft detection), so tabs take turns (Web Locks)
 * and a tab that waited first checks whether another already refreshed for it.
 */
export function refreshSession() {
  if (!refreshing) {
    const run = async () => {
      if ((await send("GET", "/me")).ok) return true;
      return (await send("POST", "/sessions/refresh")).ok;
    };
    // Web Locks need a secure context (HTTPS, or localhost); elsewhere this tab goes alone.
    const turn = navigator.locks ? navigator.locks.request("gg-session-refresh", run) : run();
    refreshing = turn.catch(() => false).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** Sends a request and returns its JSON answer, or throws its ApiProblem. */
export async function api(method, path, body) {
  let response = await send(method, path, body);
  if (response.status === 401 && path !== "/sessions/refresh") {
    const problem = await response.clone().json().catch(() => null);
    if (problem?.code === "invalid_token" && (await refreshSession())) {
      response = await send(method, path, body);
    }
  }
  return read(response);
}
