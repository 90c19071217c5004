/* Wide blocks on a narrow column (desktop or phone). A display equation wider than its
   column shrinks to fit, down to MIN_SCALE of its size; an equation, an output table or a
   table of the text that still does not fit scrolls inside its box, and says so (book-scrolls: a
   shadow at the edge and a "scroll" label). Runs when MathJax has typeset the page, and
   again when the window changes width. */
(function () {
  var MIN_SCALE = 0.6;

  function fitEquations() {
    document.querySelectorAll('.bd-article mjx-container[display="true"]').forEach(function (box) {
      box.style.fontSize = "";
      var room = box.clientWidth, needed = box.scrollWidth;
      if (needed > room + 1) {
        box.style.fontSize = Math.max(MIN_SCALE, (0.99 * room) / needed) * 100 + "%";
      }
    });
  }

  // The box that shows a block's cue: its parent, or a new one around it when it has siblings.
  function cueBox(el) {
    var parent = el.parentElement;
    if (parent.children.length === 1 || parent.classList.contains("book-scroll-box")) return parent;
    var box = document.createElement("div");
    box.className = "book-scroll-box";
    parent.insertBefore(box, el);
    box.appendChild(el);
    return box;
  }

  function markScrolling() {
    var wide = ".bd-article .cell_output pre, .bd-article mjx-container[display=\"true\"], .bd-article table";
    document.querySelectorAll(wide).forEach(function (el) {
      var scrolls = el.scrollWidth > el.clientWidth + 1;
      if (scrolls) cueBox(el).classList.add("book-scrolls");
      else el.parentElement.classList.remove("book-scrolls");
    });
  }

  function fit() {
    fitEquations();
    markScrolling();
  }

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(fit, 100);
  });
  window.addEventListener("load", function () {
    var typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
    // MathJax measures with its fonts: fit once it has typeset and every font has loaded
    Promise.all([typeset, document.fonts && document.fonts.ready]).then(fit);
    setTimeout(fit, 2000); // and once more, should a late font or image change the layout
  });
})();
