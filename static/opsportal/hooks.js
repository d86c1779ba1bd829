// The heartbeat page's "Copy" buttons: each copies the read-only field its data-copy names.
// Loaded in the page's head by the ModelAdmin's Media: it starts once the document is parsed.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  document.querySelectorAll("button.hooks-copy").forEach(function (button) {
    button.addEventListener("click", function () {
      const source = document.getElementById(button.dataset.copy);
      if (!source) {
        return;
      }
      source.select();
      const done = function () {
        button.textContent = "Copied";
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.value).then(done, function () {
          document.execCommand("copy");
          done();
        });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
});
