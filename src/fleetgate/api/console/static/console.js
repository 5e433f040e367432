// fleetgate console: live updates from the console's event stream (Server-Sent Events),
// the bars of bulk operations, and confirmations. No library; everything else is HTML.
"use strict";

function setBars(root) {
  for (const part of root.querySelectorAll(".bar .part[data-share]")) {
    part.style.width = part.dataset.share + "%";
  }
}

function replaceWith(element, html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const fresh = template.content.firstElementChild;
  element.replaceWith(fresh);
  return fresh;
}

function onOperation(source, change) {
  const row = document.querySelector(`tr[data-operation="${change.id}"]`);
  if (row) {
    if (row.dataset.status !== change.status) replaceWith(row, change.row);
  } else if (source.dataset.liveInsert === "true") {
    const body = document.querySelector("table[data-live-table] tbody");
    if (body) {
      const template = document.createElement("template");
      template.innerHTML = change.row.trim();
      body.prepend(template.content.firstElementChild);
      document.querySelector("[data-empty]")?.remove();
    }
  }
  const page = source.dataset.operationPage;
  if (page === change.id) {
    const status = document.querySelector(`[data-operation-status="${change.id}"]`);
    if (status && status.querySelector("[data-field=status]").textContent !== change.status) {
      const fresh = replaceWith(status, change.detail);
      const history = document.querySelector(`[data-history="${change.id}"]`);
      if (history) {
        const item = document.createElement("li");
        const when = fresh.querySelector("time");
        const reason = fresh.querySelector("[data-field=failure]").textContent.trim();
        item.textContent = `${when ? when.textContent : ""} ${change.status}` +
          (change.status === "FAILED" && reason !== "—" ? `: ${reason}` : "");
        history.append(item);
      }
    }
  }
}

function onBulk(change) {
  const card = document.querySelector(`[data-bulk="${change.id}"]`);
  if (!card) return;
  const back = card.dataset.back;
  const fresh = replaceWith(card, change.html);
  setBars(fresh);
  if (back) {
    // the page the card's forms come back to (the stream renders it for the list)
    fresh.dataset.back = back;
    for (const form of fresh.querySelectorAll("form")) {
      const input = document.createElement("input");
      Object.assign(input, { type: "hidden", name: "back", value: back });
      form.append(input);
    }
  }
}

function connect(source) {
  const state = source.querySelector("[data-live-state]");
  const events = new EventSource(source.dataset.liveSource);
  events.addEventListener("open", () => {
    state.textContent = "live";
    source.dataset.connected = "true";
  });
  events.addEventListener("error", () => {
    state.textContent = "reconnecting…";
    source.dataset.connected = "false";
  });
  events.addEventListener("operation", (e) => onOperation(source, JSON.parse(e.data)));
  events.addEventListener("bulkOperation", (e) => onBulk(JSON.parse(e.data)));
  // The changes missed while away are not at hand any more: the page is stale.
  events.addEventListener("reset", () => window.location.reload());
}

// A device's live trace: each entry's list item, put on top (the newest first); an entry
// seen already (after a reconnection) is not put twice.
function followTrace(source) {
  const state = source.querySelector("[data-live-state]");
  const list = document.getElementById("trace-entries");
  const events = new EventSource(source.dataset.traceSource);
  events.addEventListener("open", () => {
    state.textContent = "live";
    source.dataset.connected = "true";
  });
  events.addEventListener("error", () => {
    state.textContent = "reconnecting…";
    source.dataset.connected = "false";
  });
  events.addEventListener("entry", (e) => {
    const entry = JSON.parse(e.data);
    if (list.querySelector(`[data-entry="${entry.id}"]`)) return;
    const template = document.createElement("template");
    template.innerHTML = entry.html.trim();
    list.prepend(template.content.firstElementChild);
  });
  events.addEventListener("ended", () => {
    events.close();
    state.textContent = "the trace has ended";
    source.dataset.connected = "false";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setBars(document);
  for (const source of document.querySelectorAll("[data-trace-source]")) followTrace(source);
  for (const source of document.querySelectorAll("[data-live-source]")) connect(source);
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
});
