// Signing in, registering, and giving a guest a username and password (PUT /me/credentials),
// each a form whose refusals are shown from the API's problem documents: a known `code` in the
// page's language, anything else with the server's own words.

import { api, ApiProblem } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

/** Words for a refusal, in the page's language when its code is known. */
export function explain(error) {
  if (error instanceof ApiProblem && error.code) {
    const key = `problem_${error.code}`;
    const text = t(key, { s: error.retryAfter || 1 });
    if (text !== key) return text;
  }
  return t("error", { message: error.message });
}

/** The field a refusal is about, so it can be marked invalid. */
function fieldOf(code) {
  if (code === "invalid_username" || code === "username_taken") return "username";
  if (code === "weak_password") return "password";
  return null;
}

/**
 * Wires `form` to `send(username, password)`; `done(answer)` runs after a success. While a
 * request is out the submit button is disabled; a refusal is shown in `#{errorId}` and the
 * field it concerns marked `aria-invalid` and focused.
 */
function wire(form, errorId, send, done) {
  const error = $(errorId);
  const inputs = { username: form.elements.username, password: form.elements.password };
  for (const input of Object.values(inputs)) {
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    error.textContent = "";
    button.disabled = true;
    try {
      const answer = await send(inputs.username.value.trim(), inputs.password.value);
      inputs.password.value = "";
      await done(answer);
    } catch (refusal) {
      error.textContent = explain(refusal);
      const field = inputs[fieldOf(refusal.code)];
      if (field) {
        field.setAttribute("aria-invalid", "true");
        field.focus();
      }
    } finally {
      button.disabled = false;
    }
  });
}

/** The start screen's two forms; `signedIn(account)` shows the game. */
export function wireSignIn(signedIn) {
  wire(
    $("sign-in-form"),
    "sign-in-error",
    (username, password) => api("POST", "/sessions", { username, password }),
    (answer) => signedIn(answer.account),
  );
  wire(
    $("register-form"),
    "register-error",
    (username, password) => api("POST", "/accounts", { username, password }),
    (answer) => signedIn(answer.account),
  );
}

/** The guest's "keep this account" form; `upgraded(account)` redraws who is signed in. */
export function wireUpgrade(upgraded) {
  wire(
    $("upgrade-form"),
    "upgrade-error",
    (username, password) => api("PUT", "/me/credentials", { username, password }),
    async (account) => {
      $("kept").textContent = t("kept", { name: account.username });
      await upgraded(account);
    },
  );
}
