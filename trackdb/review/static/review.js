// Keyboard shortcuts and drawing a split line; the page works without this file.
(function () {
  "use strict";
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea") {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    const key = ev.key.toLowerCase();
    const field = document.querySelector('[data-focus-key="' + key + '"]');
    if (field) { ev.preventDefault(); field.focus(); field.select(); return; }
    const target = document.querySelector('[data-key="' + key + '"]');
    if (!target) return;
    ev.preventDefault();
    if (target.tagName.toLowerCase() === "a") { window.location.assign(target.href); return; }
    const form = target.form;
    if (form && form.reportValidity()) form.requestSubmit(target);
  });

  // Two clicks on the middle crop: the cut from the first point to the second, in frame pixels.
  const img = document.getElementById("crop-this");
  const overlay = document.getElementById("cut-overlay");
  const field = document.getElementById("split-line");
  if (!img || !overlay || !field) return;
  let first = null;
  function framePoint(ev) {
    const r = img.getBoundingClientRect();
    const s = parseFloat(img.dataset.scale) * (r.width / img.naturalWidth || 1);
    return { y: parseFloat(img.dataset.y0) + (ev.clientY - r.top) / s, x: parseFloat(img.dataset.x0) + (ev.clientX - r.left) / s,
             py: ev.clientY - r.top, px: ev.clientX - r.left };
  }
  img.addEventListener("click", function (ev) {
    const p = framePoint(ev);
    if (first === null) {
      first = p;
      overlay.innerHTML = '<circle cx="' + p.px + '" cy="' + p.py + '" r="3" fill="#ff3b3b"/>';
      return;
    }
    overlay.innerHTML = '<line x1="' + first.px + '" y1="' + first.py + '" x2="' + p.px + '" y2="' + p.py +
      '" stroke="#ff3b3b" stroke-width="2"/>';
    field.value = [first.y, first.x, p.y, p.x].map(function (v) { return v.toFixed(1); }).join(",");
    first = null;
  });
})();
