// Let long man-page names (SSL_CTX_set_session_cache_mode) wrap after an
// underscore instead of mid-word: add a <wbr> after each "_" in the link texts
// of the sidebar and of the page's table of contents (see resume.css).
document.addEventListener("DOMContentLoaded", () => {
  const links = document.querySelectorAll(".sidebar-tree a.reference, .toc-tree a.reference");
  for (const link of links) {
    const walker = document.createTreeWalker(link, NodeFilter.SHOW_TEXT);
    const texts = [];
    while (walker.nextNode()) {
      if (walker.currentNode.nodeValue.includes("_")) texts.push(walker.currentNode);
    }
    for (const text of texts) {
      const parts = text.nodeValue.split("_");
      const fragment = document.createDocumentFragment();
      parts.forEach((part, i) => {
        fragment.append(part);
        if (i < parts.length - 1) {
          fragment.append("_");
          fragment.append(document.createElement("wbr"));
        }
      });
      text.replaceWith(fragment);
    }
  }
});
