// tokenward portal: copy buttons and one-shot forms. No inline script anywhere (strict CSP).
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  field.select();
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(done, () => { document.execCommand("copy"); done(); });
  } else {
    document.execCommand("copy");
    done();
  }
});
// A double click must not create two tokens: disable the submit button once the form leaves.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.hasAttribute("data-once")) return;
  if (form.dataset.sent) { event.preventDefault(); return; }
  form.dataset.sent = "1";
  for (const b of form.querySelectorAll("button[type=submit]")) b.setAttribute("aria-disabled", "true");
});
// The policy what-if page: an uploaded file fills the textarea (and picks its name when it is one of the seven).
document.addEventListener("change", (event) => {
  const input = event.target.closest("input[type=file][data-load-into]");
  if (!input || !input.files || !input.files.length) return;
  const file = input.files[0];
  const target = document.getElementById(input.dataset.loadInto);
  const select = document.getElementById(input.dataset.nameInto || "");
  if (select) {
    for (const option of select.options) if (option.value === file.name) select.value = file.name;
  }
  file.text().then((text) => { if (target) target.value = text; });
});
