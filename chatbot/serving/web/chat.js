// The chat page of `chatbot serve`: sends the conversation to POST v1/chat/completions with
// "stream": true and shows the reply as its server-sent events arrive. The conversation lives
// in this page only; the API key, when the server needs one, in this tab's sessionStorage.
// Every text goes into the page through textContent: a reply is never read as HTML.

const API = "v1"; // relative to the page, as the page's own files are
const KEY_STORE = "chatbot.apiKey";

const $ = (id) => document.getElementById(id);
const log = $("log");
const alertBox = $("error");
const composer = $("composer");
const message = $("message");
const send = $("send");
const keyField = $("key-field");
const keyInput = $("api-key");
const SETTINGS = [ // [input id, request field]: the server reads and checks them (completions.py)
  ["temperature", "temperature"],
  ["top-p", "top_p"],
  ["beam", "beam"],
];

let conversation = []; // the finished turns, {role, content}, sent before each new message
let pending = null; // the AbortController of the reply being received

/** A refusal from the server: its status and the message of its OpenAI-style error body. */
class ServerError extends Error {
  constructor(status, text) {
    super(text);
    this.status = status;
  }
}

/** The server could not be reached, or the connection broke mid-reply. */
class Unreachable extends Error {}

/** A value the page cannot send (not a number). */
class InputError extends Error {}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = keyInput.value.trim() || sessionStorage.getItem(KEY_STORE);
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function serverError(response) {
  let text = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) text = body.error.message;
  } catch {
    // not our JSON (a proxy's page, say): the status says what happened
  }
  return new ServerError(response.status, text);
}

/** The API's request, failing with Unreachable rather than fetch's bare TypeError. */
async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(`${API}/${path}`, { ...options, headers: headers() });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new Unreachable(err.message);
  }
  if (!response.ok) throw await serverError(response);
  return response;
}

function showError(err) {
  let text;
  if (err instanceof ServerError && err.status === 401) {
    text = keyInput.value.trim()
      ? "The server refused this API key: enter the one given to chatbot serve --api-key."
      : "This server needs its API key (the one given to chatbot serve --api-key): " +
        "enter it in the API key field, then send again.";
    askForKey();
  } else if (err instanceof ServerError) {
    text = `The server answered ${err.status}: ${err.message}`;
  } else if (err instanceof Unreachable) {
    text = `Cannot reach the server at ${location.origin} (${err.message}). ` +
      "Is chatbot serve still running?";
  } else {
    text = err.message;
  }
  alertBox.textContent = text;
  alertBox.hidden = false;
}

function clearError() {
  alertBox.hidden = true;
  alertBox.textContent = "";
}

function askForKey() {
  keyField.hidden = false;
  keyInput.focus();
}

function saveKey() {
  const key = keyInput.value.trim();
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
  showModel(); // the model's name, or the error again
}

/** The settings a user filled in, as request fields; blank ones keep the saved settings. */
function settings() {
  const fields = {};
  for (const [id, name] of SETTINGS) {
    const input = $(id);
    if (input.validity.badInput) {
      const label = document.querySelector(`label[for="${id}"]`).textContent;
      throw new InputError(`${label} must be a number, or blank for the model's saved setting.`);
    }
    if (input.value.trim() !== "") fields[name] = Number(input.value);
  }
  return fields;
}

/** The data of each server-sent event of a response, as text. */
async function* events(response) {
  // TextDecoderStream keeps a character whose UTF-8 bytes arrive in two reads (Chinese text).
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) { // chatbot serve ends each event so
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const data = lines.filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) yield data;
    }
  }
}

/**
 * Streams the reply to `messages`, calling onText with the text so far; returns the text and
 * what the last chunk tells of it ({source, confidence}, null if it tells nothing).
 */
async function stream(messages, signal, onText) {
  const body = JSON.stringify({ messages, stream: true, ...settings() });
  const response = await call("chat/completions", { method: "POST", body, signal });
  let text = "";
  let said = null;
  try {
    for await (const data of events(response)) {
      if (data === "[DONE]") return { text, said };
      const chunk = JSON.parse(data);
      if (chunk.error) { // a stream that has begun ends with an error event (a timeout, ...)
        throw new ServerError(chunk.error.type === "timeout_error" ? 504 : 500,
          chunk.error.message);
      }
      const choice = chunk.choices && chunk.choices[0];
      const delta = choice && choice.delta.content;
      if (delta) {
        text += delta;
        onText(text);
      }
      if (choice && choice.finish_reason && typeof choice.confidence === "number") {
        said = { source: choice.source, confidence: choice.confidence };
      }
    }
  } catch (err) {
    if (err instanceof ServerError || err.name === "AbortError") throw err;
    throw new Unreachable(err.message); // the connection broke: reader.read() failed
  }
  throw new Unreachable("the reply was cut off before its end");
}

function addTurn(role, text) {
  const turn = document.createElement("div");
  turn.className = `turn ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Bot";
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  turn.append(who, body);
  log.append(turn);
  log.scrollTop = log.scrollHeight;
  return turn;
}

/** Where a reply came from and how sure the bot is, small under it: "memory · 0.93". */
function showSaid(turn, said) {
  const note = document.createElement("small");
  note.className = "said";
  note.textContent = `${said.source} · ${said.confidence.toFixed(2)}`;
  note.title = "where the reply came from (model, memory: a known reply, taught, or " +
    "fallback: the bot does not know) and the bot's confidence in it, 0 to 1";
  turn.append(note);
}

async function submit(event) {
  event.preventDefault();
  const text = message.value;
  if (!text.trim() || pending) return;
  clearError();
  const controller = new AbortController();
  pending = controller;
  send.disabled = true;
  const asked = addTurn("user", text);
  const answer = addTurn("assistant", "");
  const answerText = answer.querySelector(".text");
  log.setAttribute("aria-busy", "true"); // screen readers read the reply once, when it is whole
  message.value = "";
  try {
    const messages = [...conversation, { role: "user", content: text }];
    const { text: reply, said } = await stream(messages, controller.signal, (sofar) => {
      answerText.textContent = sofar;
      log.scrollTop = log.scrollHeight;
    });
    answerText.textContent = reply;
    if (said) showSaid(answer, said);
    conversation = [...messages, { role: "assistant", content: reply }];
  } catch (err) {
    // The turn did not happen: it leaves the log, and the message goes back in the box to send
    // again (unless "New conversation" stopped it).
    asked.remove();
    answer.remove();
    if (err.name !== "AbortError") {
      if (!message.value) message.value = text;
      showError(err);
    }
  } finally {
    log.removeAttribute("aria-busy");
    if (pending === controller) pending = null;
    send.disabled = false;
  }
}

function newConversation() {
  if (pending) pending.abort();
  pending = null;
  conversation = [];
  log.replaceChildren();
  clearError();
  send.disabled = false;
  message.focus();
}

async function showModel() {
  const name = $("model");
  try {
    const { data } = await (await call("models")).json();
    name.textContent = data && data.length ? data[0].id : "no model";
    clearError();
  } catch (err) {
    name.textContent = "unknown";
    showError(err);
  }
}

message.addEventListener("keydown", (event) => {
  // While an input method (Chinese, Japanese, ...) is composing, Enter picks its candidate and
  // must not send. Safari reports that Enter with keyCode 229 and isComposing already false.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
    return;
  }
  event.preventDefault();
  composer.requestSubmit();
});
composer.addEventListener("submit", submit);
$("new").addEventListener("click", newConversation);
$("settings-form").addEventListener("submit", (event) => event.preventDefault());
keyInput.addEventListener("change", saveKey); // on leaving the field
keyField.addEventListener("submit", (event) => { // on Enter
  event.preventDefault();
  saveKey();
});

keyInput.value = sessionStorage.getItem(KEY_STORE) || "";
keyField.hidden = !keyInput.value;
showModel();
message.focus();
