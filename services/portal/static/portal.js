// The portal's only script (served by the portal itself): ask before an answer is sent.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// The drill-down's "dispute the ticked settlements" button is live only while one is ticked.
document.addEventListener("change", function (event) {
  var form = event.target.form;
  if (!form || form.id !== "dispute-items") {
    return;
  }
  var ticked = form.querySelectorAll('input[name="settlement_ids"]:checked').length;
  form.querySelector("#dispute-selected").disabled = ticked === 0;
});
