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

// Image viewer: window presets and frame stepping swap the /rendered
// address (WADO-RS, PS3.18 §10.4.1.1.3); the server renders a lossless PNG
// (the `accept` query parameter, §8.3.3.1: the default would be JPEG).
document.addEventListener("DOMContentLoaded", () => {
  for (const fig of document.querySelectorAll("figure.viewer")) {
    const img = fig.querySelector("img.dicom-image");
    if (!img) {
      continue;
    }
    const base = fig.dataset.base;
    const frames = Number.parseInt(fig.dataset.frames || "1", 10);
    const select = fig.querySelector("select.window-select");
    const pos = fig.querySelector(".frame-pos");
    let frame = 1;
    const caption = img.alt.replace(/, frame \d+ of \d+$/, "");
    const update = () => {
      let src = frames > 1 ? `${base}/frames/${frame}/rendered` : `${base}/rendered`;
      src += "?accept=image/png";
      if (select && select.value) {
        src += "&window=" + encodeURIComponent(select.value);
      }
      img.src = src;
      if (frames > 1) {
        img.alt = `${caption}, frame ${frame} of ${frames}`;
        if (pos) {
          pos.textContent = `${frame} / ${frames}`;
        }
      }
    };
    if (select) {
      select.addEventListener("change", update);
    }
    const step = (d) => {
      frame = ((frame - 1 + d + frames) % frames) + 1;
      update();
    };
    const prev = fig.querySelector(".frame-prev");
    const next = fig.querySelector(".frame-next");
    if (prev) {
      prev.addEventListener("click", () => step(-1));
    }
    if (next) {
      next.addEventListener("click", () => step(1));
    }
    if (frames > 1) {
      fig.tabIndex = 0;
      fig.addEventListener("keydown", (e) => {
        if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
        if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
      });
    }
  }
});
