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

  // A "Copy" button copies the field it names (a login link).
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("[data-copy]");
    if (!b) { return; }
    var f = document.getElementById(b.getAttribute("data-copy"));
    if (!f) { return; }
    f.select();
    if (navigator.clipboard) { navigator.clipboard.writeText(f.value).catch(function () { /* selected: ctrl-c */ }); }
    b.textContent = "Copied";
  });

  // The server list's head checkbox ticks or clears every row of the page.
  document.addEventListener("change", function (ev) {
    if (!ev.target || ev.target.id !== "tick-all") { return; }
    var ticks = document.querySelectorAll("input.tick");
    for (var i = 0; i < ticks.length; i++) { ticks[i].checked = ev.target.checked; }
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) { return; }
    var s = document.getElementById("search");
    if (s) { ev.preventDefault(); s.focus(); s.select(); }
  });
})();
