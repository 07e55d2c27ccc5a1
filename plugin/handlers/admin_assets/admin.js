// CareRoute admin: the live preview. Plain DOM; ticket text is sent only to /admin/preview.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const previewForm = document.getElementById("preview-form");
  const settingsForm = document.getElementById("settings");
  const result = document.getElementById("preview-result");
  if (!previewForm || !result) return;
  let timer = null;
  let sequence = 0;

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function settingsValues() {
    const values = {};
    if (!settingsForm) return values;
    for (const field of settingsForm.elements) {
      if (!field.name || field.name === "csrf") continue;
      if (field.type === "checkbox") { if (field.checked) values[field.name] = "on"; }
      else values[field.name] = field.value;
    }
    return values;
  }

  function actionItems(plan) {
    const list = element("ul", null, "actions");
    const add = (label, value) => {
      const item = element("li", label + ": ");
      item.appendChild(element("code", value));
      list.appendChild(item);
    };
    if (plan.tags.length) add("Add tags", plan.tags.join(" "));
    if (plan.priority) add("Raise priority to", plan.priority);
    if (plan.group_id !== null) add("Move to group", String(plan.group_id));
    if (plan.macro_id !== null) add(plan.apply_macro ? "Apply macro" : "Suggest macro", String(plan.macro_id));
    if (plan.unassign) add("Unassign", "current agent");
    if (plan.auto_reply_html) add("Automatic reply", "sent to the customer");
    if (!list.children.length) list.appendChild(element("li", "Nothing is written to this ticket."));
    return list;
  }

  function show(data) {
    result.replaceChildren();
    const head = element("p");
    head.appendChild(element("strong", "Tier: "));
    head.appendChild(element("span", data.tier, "badge " + data.tier));
    head.appendChild(document.createTextNode("  Score: " + data.score.toFixed(2) +
      "  Language: " + data.language));
    head.id = "preview-tier";
    result.appendChild(head);
    if (data.unsaved_settings) {
      result.appendChild(element("p", "Using the settings in the form (not saved yet).", "hint"));
    }
    result.appendChild(element("h3", "Signals"));
    const text = element("div", null, "highlighted");
    text.innerHTML = data.highlighted_html;  // escaped by the server; only <mark> added
    result.appendChild(text);
    const signals = element("ul");
    for (const s of data.signals) {
      const words = s.words === null ? "(words not shown: method or means)" : "\u201c" + s.words + "\u201d";
      const flags = s.flags.length ? " [" + s.flags.join(", ") + "]" : "";
      signals.appendChild(element("li", s.category + " \u2013 " + s.rule + flags + ": " + words));
    }
    if (!data.signals.length) signals.appendChild(element("li", "No signal."));
    result.appendChild(signals);
    result.appendChild(element("h3", "What CareRoute would do"));
    result.appendChild(actionItems(data.plan));
    if (data.plan.note_html) {
      result.appendChild(element("h3", "Internal note, as the agent sees it"));
      const note = element("div", null, "note");
      note.innerHTML = data.plan.note_html;  // sanitised by the server to the helpdesk's tags
      result.appendChild(note);
    }
  }

  async function run() {
    const text = document.getElementById("preview-text").value;
    if (!text.trim()) { result.replaceChildren(); return; }
    const mine = ++sequence;
    const reply = await fetch("/admin/preview", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify({text: text, locale: document.getElementById("preview-locale").value,
                            settings: settingsValues()})
    });
    if (mine !== sequence) return;  // a newer preview is on its way
    const data = await reply.json().catch(() => ({error: "The preview failed."}));
    if (!reply.ok) {
      result.replaceChildren(element("p", data.error || "The preview failed.", "error"));
      result.firstChild.setAttribute("role", "alert");
      return;
    }
    show(data);
  }

  function soon() { clearTimeout(timer); timer = setTimeout(run, 350); }
  previewForm.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  previewForm.addEventListener("input", soon);
  if (settingsForm) settingsForm.addEventListener("input", soon);
  if (settingsForm) settingsForm.addEventListener("change", soon);
})();
