// Course book: keep figures readable on narrow screens (see dgm-book.css).
// A figure drawn 1100 px wide with three panels, squeezed into a 360 px column, has
// unreadable labels; below 700 px of window such a strip (more than twice as wide as tall)
// keeps min(its width, 640 px) and scrolls. Single-panel figures shrink as usual.
(function () {
  const READABLE = 640;
  const STRIP = 2;  // width / height above which a figure counts as several panels
  function mark(img) {
    const width = Math.min(img.naturalWidth, READABLE);
    if (width > 0 && img.naturalWidth > STRIP * img.naturalHeight) {
      img.style.setProperty("--dgm-readable-width", width + "px");
      img.classList.add("dgm-readable");
    }
  }
  function init() {
    document.querySelectorAll("div.cell_output img").forEach(function (img) {
      if (img.complete) {
        mark(img);
      } else {
        img.addEventListener("load", function () { mark(img); });
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
