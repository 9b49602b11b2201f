// postcall console: the only script. It refreshes the live counters every 2 s, narrows the
// operator list of a filter row to the operators its field accepts (from the catalog the
// server derived from the validator) and asks before deleting. Everything works without it.
"use strict";

function refreshCounters() {
  fetch("/console/counters.json", { credentials: "same-origin", cache: "no-store" })
    .then((r) => (r.ok ? r.json() : null))
    .then((c) => {
      if (!c) return;
      document.querySelectorAll("[data-counter]").forEach((el) => {
        const v = c[el.dataset.counter];
        el.textContent = v === null || v === undefined ? "–" : String(v);
      });
    })
    .catch(() => {});
}

function narrowOperators(form) {
  let catalog;
  try { catalog = JSON.parse(form.dataset.catalog); } catch (e) { return; }
  const byName = new Map(catalog.map((f) => [f.name, f]));
  const family = (name) =>
    name.startsWith("tags.") ? byName.get("tags.<key>")
      : name.toLowerCase().startsWith("directorymatches.") ? byName.get("directoryMatches.<key>")
      : byName.get(name);
  form.querySelectorAll("tr.filter-row").forEach((row) => {
    const field = row.querySelector(".f-field");
    const op = row.querySelector(".f-op");
    const value = row.querySelector(".f-value");
    const update = () => {
      const spec = family(field.value.trim());
      op.querySelectorAll("option").forEach((o) => {
        o.hidden = !!spec && !spec.ops.includes(o.value);
      });
      if (spec && !spec.ops.includes(op.value)) op.value = spec.ops[0];
      if (spec && spec.names.length) value.setAttribute("list", "names-" + spec.name);
      else value.removeAttribute("list");
    };
    field.addEventListener("change", update);
    update();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("counters")) {
    refreshCounters();
    setInterval(refreshCounters, 2000);
  }
  const form = document.getElementById("trigger-form");
  if (form) narrowOperators(form);
  document.querySelectorAll("form.confirm").forEach((f) =>
    f.addEventListener("submit", (e) => {
      if (!window.confirm("Really? This cannot be undone.")) e.preventDefault();
    }));
});
