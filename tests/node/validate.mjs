#!/usr/bin/env node
// Validate a UI message stream (the Vercel AI SDK's SSE protocol, v1) with the `ai` package
// itself, in every release installed side by side (see package.json), and print a JSON summary.
//
//   node validate.mjs <file | http(s) URL> [--method POST] [--body '<json>' | --body @file]
//                     [--header 'name: value']... [--packages ai5,ai]
//
// For each release it uses only public API, and exactly the code path `useChat` uses:
//   (a) every chunk, one at a time, goes through `DefaultChatTransport` — its SSE parser and
//       the package's own chunk schema (strict in some releases, loose in others) — so each
//       invalid chunk is reported, not just the first;
//   (b) the whole stream goes through the transport and then `readUIMessageStream`, which
//       assembles the assistant message the way the UI would show it.
// The source is read once (a URL is fetched once), then replayed to every release.
//
// Exit status: 0 when every chunk is valid and every reader finished without a thrown error;
// 1 otherwise (error *chunks* are a normal outcome, reported under "errors", not a failure);
// 2 on bad usage.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const options = { method: "POST", body: undefined, headers: {}, packages: undefined };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "--method") options.method = value().toUpperCase();
    else if (arg === "--body") {
      const body = value();
      options.body = body.startsWith("@") ? readFileSync(body.slice(1), "utf8") : body;
    } else if (arg === "--header") {
      const header = value();
      const colon = header.indexOf(":");
      if (colon < 1) usage(`bad header: ${header}`);
      options.headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
    } else if (arg === "--packages") options.packages = value().split(",").filter(Boolean);
    else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length !== 1) usage("exactly one source (file path or URL) is needed");
  return { source: positional[0], ...options };
}

function usage(message) {
  process.stderr.write(`validate.mjs: ${message}\n`);
  process.exit(2);
}

async function readSource({ source, method, body, headers }) {
  if (/^https?:\/\//.test(source)) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined && method !== "GET" && method !== "HEAD") {
      init.body = body;
      init.headers["content-type"] ??= "application/json";
    }
    const response = await fetch(source, init);
    return {
      status: response.status,
      headers: Object.fromEntries(response.headers),
      bytes: new Uint8Array(await response.arrayBuffer()),
    };
  }
  return {
    status: 200,
    headers: {
      "content-type": "text/event-stream",
      "x-vercel-ai-ui-message-stream": "v1",
    },
    bytes: new Uint8Array(readFileSync(source)),
  };
}

// Splits the stream into its data payloads only to feed chunks one at a time in (a); the
// authoritative parse of the whole stream is the package's own, in (b).
function dataPayloads(text) {
  const payloads = [];
  for (const block of text.replace(/\r\n?/g, "\n").split("\n\n")) {
    const data = block
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""));
    if (data.length > 0) payloads.push(data.join("\n"));
  }
  return payloads;
}

function sseBody(payloads) {
  return payloads.map((payload) => `data: ${payload}\n\n`).join("");
}

// A transport whose fetch answers with the given body, as the server would have.
function transportFor(ai, bodyText, headers) {
  return new ai.DefaultChatTransport({
    api: "http://validator.invalid/api/chat",
    fetch: async () => new Response(bodyText, { status: 200, headers }),
  });
}

async function sendMessages(transport) {
  return transport.sendMessages({
    chatId: "chat-validate",
    messages: [],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
}

function describe(error) {
  const name = error?.name ?? "Error";
  const message = String(error?.message ?? error).split("\n")[0].slice(0, 500);
  return `${name}: ${message}`;
}

async function validateChunks(ai, payloads, headers) {
  const invalid = [];
  for (const [index, payload] of payloads.entries()) {
    if (payload === "[DONE]") continue;
    try {
      const stream = await sendMessages(transportFor(ai, sseBody([payload]), headers));
      for await (const _chunk of stream) {
        // the one chunk parsed and validated
      }
    } catch (error) {
      invalid.push({ index, chunk: payload.slice(0, 300), error: describe(error) });
    }
  }
  return invalid;
}

async function readMessage(ai, bodyText, headers) {
  const reported = []; // everything onError received
  const seen = []; // chunk types, after the package's validation
  const errorChunks = []; // errorText of `error` chunks
  let message = null;
  let thrown = null;
  try {
    const chunks = await sendMessages(transportFor(ai, bodyText, headers));
    const tapped = chunks.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          seen.push(chunk.type);
          if (chunk.type === "error") errorChunks.push(chunk.errorText);
          controller.enqueue(chunk);
        },
      }),
    );
    for await (const snapshot of ai.readUIMessageStream({
      stream: tapped,
      onError: (error) => reported.push(error),
    })) {
      message = snapshot;
    }
  } catch (error) {
    thrown = describe(error);
  }
  // An `error` chunk reaches onError as an Error carrying its errorText; anything else that
  // reached onError (a chunk the schema rejected, a part the reader could not place) is a
  // failure of the stream itself.
  const pending = [...errorChunks];
  const failures = [];
  const errors = [];
  for (const error of reported) {
    const at = pending.indexOf(error?.message);
    if (at >= 0) {
      pending.splice(at, 1);
      errors.push(error.message);
    } else failures.push(describe(error));
  }
  const parts = message?.parts ?? [];
  const textOf = (type) =>
    parts
      .filter((p) => p.type === type)
      .map((p) => p.text)
      .join("");
  return {
    text: textOf("text"),
    reasoning: textOf("reasoning"),
    parts: parts.map((p) => p.type),
    message,
    chunkTypes: seen,
    errors,
    readerError: thrown ?? failures[0] ?? null,
    aborted: seen.includes("abort"),
    finished: seen.includes("finish"),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const manifest = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
  const aliases = args.packages ?? Object.keys(manifest.dependencies);
  const source = await readSource(args);
  const summary = {
    source: args.source,
    status: source.status,
    headers: {
      "content-type": source.headers["content-type"] ?? null,
      "x-vercel-ai-ui-message-stream": source.headers["x-vercel-ai-ui-message-stream"] ?? null,
    },
    noStream: source.status === 204,
    done: false,
    chunkCount: 0,
    ok: true,
    versions: {},
  };
  if (summary.noStream || source.status < 200 || source.status >= 300) {
    summary.ok = summary.noStream;
    summary.body = summary.noStream ? null : new TextDecoder().decode(source.bytes).slice(0, 2000);
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    process.exit(summary.ok ? 0 : 1);
  }
  const bodyText = new TextDecoder().decode(source.bytes);
  const payloads = dataPayloads(bodyText);
  summary.done = payloads.length > 0 && payloads[payloads.length - 1] === "[DONE]";
  summary.chunkCount = payloads.filter((p) => p !== "[DONE]").length;
  const headers = { "content-type": "text/event-stream", ...source.headers };
  for (const alias of aliases) {
    const ai = await import(alias);
    const { version } = JSON.parse(
      readFileSync(join(here, "node_modules", alias, "package.json"), "utf8"),
    );
    const invalid = await validateChunks(ai, payloads, headers);
    const read = await readMessage(ai, bodyText, headers);
    summary.versions[alias] = { version, valid: invalid.length === 0, invalid, ...read };
    if (invalid.length > 0 || read.readerError) summary.ok = false;
  }
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  process.exit(summary.ok ? 0 : 1);
}

main().catch((error) => {
  process.stderr.write(`validate.mjs: ${error?.stack ?? error}\n`);
  process.exit(2);
});
