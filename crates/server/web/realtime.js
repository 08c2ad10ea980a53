// The real-time connection (docs/PROTOCOL.md): a ticket from POST /realtime/tickets (a browser's
// WebSocket cannot send an Authorization header), then /ws?ticket=..., hello or resume, and
// every server message handed to `onMessage`. The resume token and the highest event seq are
// kept in sessionStorage so a reloaded page picks its match up again.

const SUBPROTOCOL = "guess-game.v1.json";

export class Realtime {
  constructor({ ticket, onMessage, onState, storage }) {
    this.ticket = ticket;
    this.onMessage = onMessage;
    this.onState = onState;
    this.storage = storage;
    this.socket = null;
    this.nextId = 1;
    this.clockOffset = 0;
    this.closedByUs = false;
    this.retries = 0;
  }

  get resumeToken() {
    return this.storage.getItem("gg.resume_token");
  }

  /** The server's clock now, in milliseconds since the epoch. */
  serverNow() {
    return Date.now() + this.clockOffset;
  }

  async connect() {
    this.closedByUs = false;
    this.onState("connecting");
    const ticket = await this.ticket();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws?ticket=${encodeURIComponent(ticket)}`, [SUBPROTOCOL]);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.retries = 0;
      const token = this.resumeToken;
      // Without last_seq the whole public log is replayed, which is what a reloaded page that
      // kept only the token needs to redraw the match.
      if (token) this.send({ type: "resume", token });
      else this.send({ type: "hello" });
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket || this.closedByUs) return;
      this.onState("lost");
      const delay = Math.min(8000, 500 * 2 ** this.retries);
      this.retries += 1;
      setTimeout(() => this.connect().catch(() => this.onState("lost")), delay);
    });
    return new Promise((resolve, reject) => {
      socket.addEventListener("open", resolve, { once: true });
      socket.addEventListener("error", reject, { once: true });
    });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message.server_time_ms === "number") {
      this.clockOffset = message.server_time_ms - Date.now();
    }
    if (message.resume_token) this.storage.setItem("gg.resume_token", message.resume_token);
    if (message.type === "error" && message.code === "resume_unknown") {
      // The token is spent or the server forgot us: start afresh on this connection.
      this.storage.removeItem("gg.resume_token");
      this.send({ type: "hello" });
      return;
    }
    this.onMessage(message);
  }

  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return null;
    const id = this.nextId;
    this.nextId += 1;
    this.socket.send(JSON.stringify({ ...message, id }));
    return id;
  }

  close() {
    this.closedByUs = true;
    this.storage.removeItem("gg.resume_token");
    if (this.socket) this.socket.close(1000);
  }
}
