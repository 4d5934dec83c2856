// Move keyboard and screen-reader focus to a form's error summary when a page or fragment arrives with one,
// so the person hears what to correct and can follow its links to each field.
(function () {
  function focusSummary(root) {
    var summary = (root || document).querySelector("#error-summary");
    if (summary) { summary.focus(); }
  }
  document.addEventListener("DOMContentLoaded", function () { focusSummary(document); });
  document.addEventListener("htmx:afterSettle", function (event) { focusSummary(event.detail.elt); });
})();
