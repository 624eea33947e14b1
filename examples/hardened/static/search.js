// Reads the query from the JSON data island and shows it as text.
"use strict";
(function () {
  var island = document.getElementById("search-data");
  if (!island) { return; }
  var data = JSON.parse(island.textContent);
  document.getElementById("echo-island").textContent = data.query;
})();
