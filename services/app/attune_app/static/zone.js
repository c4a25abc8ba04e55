// The only script: fills the time-zone field with the browser's own zone. Without it, the field stays editable.
(function () {
  var field = document.querySelector("[data-guess-zone]");
  if (!field || field.value !== "UTC") return;
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) field.value = zone;
  } catch (e) { /* keep UTC: the person can type their zone */ }
})();
