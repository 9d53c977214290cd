// Fusion clinical review: small progressive enhancements; every page works
// without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Times are shown in UTC; give each its local reading as a tooltip.
  for (const t of document.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!Number.isNaN(d.getTime())) {
      t.title = "Local time: " + d.toLocaleString();
    }
  }

  // A sign-out or filter button pressed twice sends one request.
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", () => {
      for (const b of form.querySelectorAll("button[type=submit]")) {
        setTimeout(() => { b.disabled = true; }, 0);
      }
    });
  }

  // Empty filter fields are left out of the query, so the address (and
  // the browser history) stays readable.
  const filters = document.querySelector("form.filter-grid");
  if (filters) {
    filters.addEventListener("submit", () => {
      for (const el of filters.querySelectorAll("input, select")) {
        if (el.value.trim() === "") {
          el.disabled = true;
        }
      }
    });
  }
});

// Coming back with the browser's Back button shows the page as it was left:
// undo the disabling above.
window.addEventListener("pageshow", () => {
  for (const el of document.querySelectorAll("form [disabled]")) {
    el.disabled = false;
  }
});
