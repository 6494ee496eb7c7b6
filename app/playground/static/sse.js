// Server-Sent Events over a fetch() body. EventSource cannot POST, send a body or set
// headers (Authorization, Last-Event-ID), so the page parses the stream itself.
//
// The parser follows the WHATWG rules the server relies on: "field: value" lines, a blank
// line ends a frame, "data" lines join with "\n", a line starting with ":" is a comment.
// Comments are handed to the caller too: the OpenAI projections announce a question from
// the run as ": interaction_required {json}", which no other field could carry.

export class SSEParser {
  constructor() {
    this.pending = "";
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  /** Feed decoded text; returns the complete frames: {event, data, id} or {comment}. */
  push(text) {
    const out = [];
    this.pending += text;
    let start = 0;
    for (;;) {
      const end = this.pending.indexOf("\n", start);
      if (end < 0) break;
      let line = this.pending.slice(start, end);
      start = end + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      this.line(line, out);
    }
    this.pending = this.pending.slice(start);
    return out;
  }

  line(line, out) {
    if (line === "") {
      if (this.data.length || this.event || this.id !== null) {
        out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) {
      out.push({ comment: line.slice(1).replace(/^ /, "") });
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
  }
}

/**
 * Read a streaming response frame by frame. `onFrames(frames)` is called once per network
 * chunk with every frame the chunk completed, so the caller can apply them and persist its
 * state in one step. Resolves when the body ends; rejects if the connection breaks.
 */
export async function readFrames(response, onFrames) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SSEParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const frames = parser.push(value);
    if (frames.length && onFrames(frames) === false) {
      await reader.cancel();
      return;
    }
  }
}
