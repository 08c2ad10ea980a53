// Checks the server's provably fair plays in the browser with WebCrypto: the revealed server
// seed must hash (SHA-256) to the commitment published before the plays, and each computer move
// must be HMAC-SHA256(seed, "client_seed:nonce"), first byte below 255, modulo 3
// (0 rock, 1 paper, 2 scissors). See crates/game/src/fairness.rs.

const MOVES = ["rock", "paper", "scissors"];

export function hexToBytes(hex) {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error("not hexadecimal");
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export function bytesToHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function hmac(key, text) {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)));
}

/** The computer's move for `nonce` under `seedHex` and `clientSeed`. */
export async function fairMove(seedHex, clientSeed, nonce) {
  const key = await crypto.subtle.importKey(
    "raw", hexToBytes(seedHex), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  let digest = await hmac(key, `${clientSeed}:${nonce}`);
  for (let counter = 1; ; counter += 1) {
    const byte = digest.find((b) => b < 255);
    if (byte !== undefined) return MOVES[byte % 3];
    digest = await hmac(key, `${clientSeed}:${nonce}:${counter}`);
  }
}

/**
 * Checks `plays` ({nonce, computer}) made under the commitment `hash` against `revealed`
 * ({server_seed, server_seed_hash, client_seed}). Returns {ok, count} or {ok: false, reason}.
 */
export async function verifyPlays(hash, plays, revealed) {
  const seed = hexToBytes(revealed.server_seed);
  const digest = bytesToHex(await crypto.subtle.digest("SHA-256", seed));
  if (digest !== hash) return { ok: false, reason: `SHA-256 of the seed is ${digest}, not ${hash}` };
  for (const play of plays) {
    const expected = await fairMove(revealed.server_seed, revealed.client_seed, play.nonce);
    if (expected !== play.computer) {
      return { ok: false, reason: `play ${play.nonce}: the seed gives ${expected}, the server played ${play.computer}` };
    }
  }
  return { ok: true, count: plays.length };
}
