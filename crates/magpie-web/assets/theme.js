// The theme the visitor chose, applied before the page paints (loaded without defer, in the
// head). A file of its own: the Content-Security-Policy allows no inline script.
try { var t = localStorage.getItem("magpie-theme"); if (t) document.documentElement.dataset.theme = t; } catch (e) { /* private mode */ }
