/* Search result snippets without raw TeX or hidden code: before Sphinx takes a page's text,
   drop its math (MathJax typesets it on the page, the snippet would show the TeX source),
   the cells the page hides (the setup cell's code, solutions, folded cells, hidden helpers)
   and the table of contents printed for paper, so a snippet shows the page's prose. */
(function () {
  var HIDDEN = [
    ".math", "span.math", "div.math", ".tag_hide-input .cell_input", ".tag_remove-input .cell_input",
    ".tag_hide-cell", ".tag_remove-cell", ".tag_hide-output .cell_output", ".dropdown",
    ".book-folded .cell_input", "details.hide > summary", ".onlyprint", ".headerlink"
  ];
  function patch() {
    if (typeof Search === "undefined" || !Search.htmlToText || Search.htmlToText.bookPatched) { return; }
    var original = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      var page = new DOMParser().parseFromString(htmlString, "text/html");
      HIDDEN.forEach(function (query) {
        page.querySelectorAll(query).forEach(function (el) { el.remove(); });
      });
      return original(page.documentElement.outerHTML, anchor);
    };
    Search.htmlToText.bookPatched = true;
  }
  patch();
  document.addEventListener("DOMContentLoaded", patch);
})();
