// The 60-day activity chart: stacked SVG bars, one a day, with a text summary and the same data as a table
// (a chart library would be bigger than this and draws on a canvas, which says nothing to a screen reader).
import { language, t } from "./i18n.js";
import { formatDate, h, svg } from "./ui.js";

const KINDS = ["emailsSent", "emailsReceived", "meetings", "phoneCallsMade", "phoneCallsReceived"];
const DAYS = 60;

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

/** `daily`: the API's DayActivity list (days with activity only). */
export function activityChart(daily) {
  const byDay = new Map(daily.map((day) => [day.day, day]));
  const today = new Date();
  const days = [];
  for (let back = DAYS - 1; back >= 0; back -= 1) {
    const date = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back));
    const key = isoDay(date);
    const entry = byDay.get(key) || {};
    const counts = Object.fromEntries(KINDS.map((kind) => [kind, entry[kind] || 0]));
    days.push({ key, counts, total: KINDS.reduce((sum, kind) => sum + counts[kind], 0) });
  }
  const total = days.reduce((sum, day) => sum + day.total, 0);
  const busiest = days.reduce((best, day) => (day.total > best.total ? day : best), days[0]);
  const summary = total
    ? t("chart.summary", { total, busiest: formatDate(`${busiest.key}T12:00:00Z`, language(), false), count: busiest.total })
    : t("chart.empty");
  const peak = Math.max(1, ...days.map((day) => day.total));
  const width = 600;
  const height = 150;
  const step = width / DAYS;
  const bars = [];
  days.forEach((day, index) => {
    let y = height;
    for (const kind of KINDS) {
      const value = day.counts[kind];
      if (!value) continue;
      const size = (value / peak) * (height - 10);
      y -= size;
      bars.push(svg("rect", { class: `k-${kind}`, x: (index * step + 1).toFixed(1), y: y.toFixed(1),
        width: (step - 2).toFixed(1), height: size.toFixed(1) }));
    }
  });
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 2}`, role: "img", "aria-label": summary,
    focusable: "false" },
  svg("line", { x1: 0, y1: height + 1, x2: width, y2: height + 1, stroke: "#4a5360" }), ...bars);
  const rows = days.filter((day) => day.total).reverse();
  return h("div", { class: "chart", id: "activity-chart" },
    h("p", { id: "chart-summary" }, summary),
    chart,
    h("ul", { class: "legend" }, KINDS.map((kind) => h("li", {}, h("span", { class: `swatch k-${kind}`, "aria-hidden": "true" }),
      t(`chart.${kind}`)))),
    rows.length ? h("details", {}, h("summary", {}, t("chart.asTable")),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("chart.day")),
        KINDS.map((kind) => h("th", { scope: "col", class: "number" }, t(`chart.${kind}`))))),
      h("tbody", {}, rows.map((day) => h("tr", {}, h("th", { scope: "row" }, formatDate(`${day.key}T12:00:00Z`, language(), false)),
        KINDS.map((kind) => h("td", { class: "number" }, day.counts[kind]))))))) : null);
}
