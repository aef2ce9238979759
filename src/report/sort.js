document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.classList.add("sortable");
  th.title = "Sort";
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], i = th.cellIndex;
    var dir = th.dataset.dir === "asc" ? -1 : 1; th.dataset.dir = dir === 1 ? "asc" : "desc";
    var key = function (tr) { var t = tr.cells[i].textContent.replace(/[$%,]/g, ""); var n = parseFloat(t); return isNaN(n) ? t : n; };
    Array.from(body.rows).sort(function (a, b) { var x = key(a), y = key(b);
      return (typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1)) * dir; })
      .forEach(function (tr) { body.appendChild(tr); });
  });
});
