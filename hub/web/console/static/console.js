// Lead Hub console: small progressive touches. Every page works without this file.
"use strict";

// Typing another outcome picks the "other" radio button of its form.
document.addEventListener("input", (event) => {
  const field = event.target;
  if (!field.matches("[data-outcome-other]")) return;
  const other = field.form.querySelector('input[name="outcome"][value="other"]');
  if (other && field.value.trim()) other.checked = true;
});

// Buttons that act on many rows ask first.
document.addEventListener("submit", (event) => {
  const question = event.submitter && event.submitter.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// A changed filter select applies the filters at once.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field.matches("form[data-autosubmit] select")) field.form.requestSubmit();
});
