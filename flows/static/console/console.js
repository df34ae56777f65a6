// Live parts of a page: an element with data-live-url is refetched every second and replaced, until the
// server marks it final (data-final="true"). Without JavaScript the page simply shows its state at load.
(function () {
  var LEVELS = ["debug", "info", "success", "warning", "error"];

  function setLevel(item, level) {
    LEVELS.forEach(function (name) { item.classList.remove(name); });
    if (level) item.classList.add(level);
  }

  // Messages at the top of a trigger's page said what was true when they were made ("Trigger 9 queued.", "trigger
  // 10 is still on its way"); the live part says what is true now (data-status, data-in-flight). A message the
  // live part contradicts takes its colour and a sentence from it (the server writes both: data-level, data-note).
  function followMessages(fresh) {
    var status = fresh.dataset.status;
    if (!status) return;
    var inFlight = (fresh.dataset.inFlight || "").split(" ");
    document.querySelectorAll(".messagelist li[data-said-status]").forEach(function (item) {
      var note = item.querySelector(".live-note");
      var moved = item.dataset.saidStatus !== status;
      setLevel(item, moved ? fresh.dataset.level : item.dataset.saidLevel);
      if (note) note.textContent = moved ? fresh.dataset.note : "";
    });
    document.querySelectorAll(".messagelist li[data-waits-for]").forEach(function (item) {
      if (inFlight.indexOf(item.dataset.waitsFor) !== -1) return;
      setLevel(item, "info");
      var note = item.querySelector(".live-note");
      if (note) note.hidden = false;
    });
  }

  // The answer's first element replaces the live element; each further element with an id replaces the page's
  // element of that id (a trigger's Re-send box and chain line, elsewhere on the page, follow the same state).
  // Those are replaced only when their text changed, so a button is not swapped under the pointer every second.
  function place(element, html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    var parts = Array.prototype.slice.call(holder.content.children);
    var fresh = parts.shift();
    parts.forEach(function (part) {
      var old = part.id && document.getElementById(part.id);
      if (old && old.textContent.replace(/\s+/g, " ") !== part.textContent.replace(/\s+/g, " ")) old.replaceWith(part);
    });
    element.replaceWith(fresh);
    followMessages(fresh);
    return fresh;
  }

  function poll(element) {
    if (element.dataset.final === "true") return;
    setTimeout(function () {
      fetch(element.dataset.liveUrl, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (html) { poll(place(element, html)); })
        .catch(function () { poll(element); });
    }, 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(poll);
    var all = document.getElementById("select-all");
    if (all) all.addEventListener("change", function () {
      document.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = all.checked; });
    });
  });
})();
