/* Draws each report's chart from the numbers the page's tables show (#report-data). */
(function () {
  "use strict";
  var source = document.getElementById("report-data");
  if (!source || !window.Chart) return;
  var data = JSON.parse(source.textContent);
  var none = "—";
  var options = {responsive: true, maintainAspectRatio: false, animation: false,
                 plugins: {legend: {position: "bottom"}}};

  function bars(id, rows, field) {
    var canvas = document.getElementById(id);
    new Chart(canvas, {type: "bar", options: options, data: {
      labels: canvas.dataset.labels ? JSON.parse(canvas.dataset.labels)
                                    : rows.map(function (row) { return row.key === null ? none : row.key; }),
      datasets: [{label: canvas.dataset.label, data: rows.map(function (row) { return row[field || "leads"]; })}]}});
  }

  bars("chart-channels", data.channels.rows);
  bars("chart-managers", data.managers.rows);
  if (data.scores) bars("chart-scores", data.scores.rows, "value_lost");
  var series = data.timeseries.series, days = document.getElementById("chart-timeseries");
  var names = JSON.parse(days.dataset.labels);
  new Chart(days, {type: "bar", data: {
    labels: data.timeseries.days,
    datasets: Object.keys(series).map(function (channel) { return {label: names[channel], data: series[channel]}; })},
    options: Object.assign({}, options, {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}})});
})();
