// The form: what to run, over which protocol, with which options.

import { requestJSON } from "./api.js";
import { PROTOCOLS } from "./protocols.js";

const GRACE_SECONDS = 30;

export function readForm() {
  const form = document.getElementById("run-form");
  const data = new FormData(form);
  const protocol = data.get("protocol");
  const producer = data.get("producer");
  const params = {};
  for (const input of form.querySelectorAll("[data-for] input, [data-for] select")) {
    const owner = input.closest("[data-for]").dataset.for.split(" ");
    if (!owner.includes(producer) || input.value === "") continue;
    params[input.name] = input.type === "number" ? Number(input.value) : input.value;
  }
  if (producer === "synthetic" && params.fail_at === undefined) delete params.fail_code;
  const choice = data.get("on_disconnect");
  return {
    protocol,
    producer,
    params,
    message: data.get("message"),
    background: data.get("background") === "on" && !form.querySelector("[name=background]").closest("[hidden]"),
    onDisconnect: choice === "grace" ? { grace: GRACE_SECONDS } : choice,
    chatId: `chat_${crypto.randomUUID()}`,
  };
}

export function showProducerOptions() {
  const producer = document.getElementById("producer").value;
  for (const group of document.querySelectorAll("[data-for]")) {
    group.hidden = !group.dataset.for.split(" ").includes(producer);
  }
  const form = document.getElementById("run-form");
  const protocol = new FormData(form).get("protocol");
  document.getElementById("protocol-hint").textContent = PROTOCOLS[protocol].hint;
  for (const option of form.querySelectorAll("[data-protocols]")) {
    option.hidden = !option.dataset.protocols.split(" ").includes(protocol);
  }
  // The AI SDK route keeps a run for its resume only with "continue" (it has no grace).
  const policy = form.elements.on_disconnect;
  if (policy.selectedOptions[0]?.hidden) policy.value = "continue";
}

export async function loadProducers(onError) {
  const select = document.getElementById("producer");
  try {
    const models = await requestJSON("/v1/models");
    select.replaceChildren(...models.data.map((m) => new Option(m.id, m.id, m.id === "echo", m.id === "echo")));
  } catch (error) {
    onError(`Could not list producers: ${error.message}`);
  }
  showProducerOptions();
}

/** After a reload, the form shows what the run was started with. */
export function restoreForm(state) {
  if (!state || !state.producer) return; // nothing saved, or a run followed from the list
  const form = document.getElementById("run-form");
  const radio = form.querySelector(`input[name=protocol][value="${state.protocol}"]`);
  if (radio) radio.checked = true;
  const producer = form.elements.producer;
  if ([...producer.options].some((o) => o.value === state.producer)) producer.value = state.producer;
  form.elements.message.value = state.message;
  showProducerOptions();
}
