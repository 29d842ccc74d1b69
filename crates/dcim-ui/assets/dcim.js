// dcim's own script: the theme toggle (remembered in this browser), "/" to search,
// and the htmx settings that keep its requests within the page's CSP. No inline
// script anywhere: this file is loaded from /ui/assets/ like htmx.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("dcim-theme"); } catch (e) { /* storage off */ }
  if (saved === "dark" || saved === "light") { root.setAttribute("data-theme", saved); }

  function dark() {
    var t = root.getAttribute("data-theme");
    if (t) { return t === "dark"; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("#theme");
    if (!b) { return; }
    var next = dark() ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try { localStorage.setItem("dcim-theme", next); } catch (e) { /* storage off */ }
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) { return; }
    var s = document.getElementById("search");
    if (s) { ev.preventDefault(); s.focus(); s.select(); }
  });
})();
