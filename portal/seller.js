// The seller widgets: records needing attention, then the others with a search; a record's health card, KPI
// widgets and who knows whom with "Get introduced".
import { ApiError } from "./api.js";
import { activityChart } from "./chart.js";
import { language, t } from "./i18n.js";
import { field, formatDate, h, nextId, notice, select, show } from "./ui.js";

const TYPES = ["contact", "account", "lead", "opportunity"];

function card(title, ...children) {
  const id = nextId("h");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function featureOff(error) {
  // 409: the administrator has turned the feature off; the API says which in words.
  return notice("warning", h("p", {}, t("seller.featureOff")), h("p", { class: "hint" }, error.problem.detail));
}

function recordLink(item) {
  return h("a", { href: `#/record/${item.entityType}/${encodeURIComponent(item.id)}` }, item.name || item.id);
}

function healthSummary(item) {
  if (item.trend === "hidden") return h("span", { class: "muted" }, t("health.hidden"));
  if (item.score === null || item.score === undefined) return h("span", { class: "muted" }, t(`state.${item.state}`, {}, item.state));
  return h("span", {}, h("strong", { class: `grade-${item.grade}` }, `${item.score} · ${t(`grade.${item.grade}`)}`),
    " · ", t(`trend.${item.trend}`, {}, item.trend));
}

// -- the list ---------------------------------------------------------------------------------------------------

export async function records(ctx, query = {}) {
  const type = TYPES.includes(query.type) ? query.type : "contact";
  const typeSelect = select(TYPES.map((value) => [value, t(`entity.${value}.plural`)]), type);
  typeSelect.id = "entity-type";
  typeSelect.addEventListener("change", () => { window.location.hash = `#/records?type=${typeSelect.value}`; });
  let attention;
  let everything;
  try {
    [attention, everything] = await Promise.all([
      ctx.api.get(`insights/${type}`, { needsAttention: "true", pageSize: 100 }),
      ctx.api.get(`insights/${type}`, { pageSize: 100 }),
    ]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      show(h("h1", {}, t("records.title")), featureOff(error));
      return;
    }
    throw error;
  }
  const search = h("input", { type: "search", id: "search", autocomplete: "off" });
  const list = h("ul", { class: "records", id: "all-records" });
  const count = h("p", { class: "hint", id: "search-count", "aria-live": "polite" });
  const flagged = new Set(attention.items.map((item) => item.id));
  const others = everything.items.filter((item) => !flagged.has(item.id));
  const render = () => {
    const words = search.value.trim().toLowerCase();
    const shown = others.filter((item) => !words || (item.name || "").toLowerCase().includes(words));
    list.replaceChildren(...shown.map((item) => h("li", {}, recordLink(item), healthSummary(item))));
    count.textContent = t("records.count", { shown: shown.length, total: others.length });
  };
  search.addEventListener("input", render);
  render();
  show(
    h("h1", {}, t("records.title")),
    field({ label: t("records.type"), control: typeSelect }),
    card(t("records.attention"),
      h("p", { class: "hint" }, t("records.attentionHint")),
      attention.items.length
        ? h("ul", { class: "records", id: "attention" }, attention.items.map((item) => h("li", {}, recordLink(item),
          healthSummary(item))))
        : h("p", { id: "attention" }, t("records.noneNeedAttention"))),
    card(t("records.others"),
      field({ label: t("records.search"), control: search, hint: t("records.searchHint") }),
      count, list,
      everything.continuationToken ? h("p", { class: "hint" }, t("records.more")) : null),
  );
}

// -- relationships at risk (managers) -----------------------------------------------------------------------------

export async function atRisk(ctx) {
  const list = h("ul", { class: "records", id: "at-risk-list" });
  const more = h("button", { type: "button", id: "more-at-risk", hidden: true }, t("atRisk.more"));
  const money = new Intl.NumberFormat(language(), { maximumFractionDigits: 0 });
  let token = null;
  const load = async () => {
    let page;
    try {
      page = await ctx.api.get("relationships-at-risk", token ? { pageSize: 25, continuationToken: token } : { pageSize: 25 });
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) return featureOff(error);
      throw error;
    }
    list.append(...page.items.map((item) => h("li", {},
      recordLink(item),
      h("span", {}, t("atRisk.item", { who: item.departed.name || item.departed.userId,
        revenue: money.format(item.revenueAtStake), count: item.openOpportunities.length })),
      item.nextBest.length ? h("span", { class: "hint" }, t("risk.nextBest", {
        names: item.nextBest.map((i) => `${i.name || i.email} (${i.strength})`).join(", ") })) : null)));
    token = page.continuationToken;
    more.hidden = !token;
    return null;
  };
  more.addEventListener("click", () => load());
  const off = await load();
  show(h("h1", {}, t("atRisk.title")),
    off || card(t("atRisk.title"), h("p", { class: "hint" }, t("atRisk.hint")),
      list.children.length ? list : h("p", { id: "at-risk-list" }, t("atRisk.none")), more));
}

// -- one record ---------------------------------------------------------------------------------------------------

export async function record(ctx, type, id) {
  let view;
  try {
    view = await ctx.api.get(`insights/${type}/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 409)) {
      show(h("h1", {}, t("record.unavailable")), error.status === 409 ? featureOff(error)
        : notice("error", h("p", {}, error.problem.detail)), h("p", {}, h("a", { href: "#/records" }, t("record.back"))));
      return;
    }
    throw error;
  }
  const people = type === "contact" || type === "lead";
  const who = people && ctx.can("whoKnowsWhom.read") ? await whoKnowsWhomCard(ctx, type, id) : null;
  show(
    h("p", {}, h("a", { href: `#/records?type=${type}` }, t("record.back"))),
    h("h1", {}, view.name || view.id),
    h("p", { class: "hint" }, t(`entity.${type}`), " · ", t("record.computedAt", { when: formatDate(view.computedAt, language()) }),
      " · ", view.completeness === "complete" ? t("record.complete") : t("record.partial")),
    riskNotice(view),
    healthCard(view),
    kpiWidgets(view),
    who,
  );
}

/** A departure left this relationship without a strong tie (the record's `atRisk`). */
function riskNotice(view) {
  const risk = view.atRisk;
  if (!risk) return null;
  const who = risk.departed.name || risk.departed.userId;
  const money = new Intl.NumberFormat(language(), { maximumFractionDigits: 0 });
  return notice("warning",
    h("p", { id: "at-risk" }, h("strong", {}, t("risk.title")), " ", risk.departed.leftOn
      ? t("risk.leftOn", { who, when: formatDate(risk.departed.leftOn, language(), false) }) : t("risk.left", { who }),
    " ", t("risk.noStrongTie", { safe: risk.safeStrength })),
    risk.nextBest.length ? h("p", {}, t("risk.nextBest", {
      names: risk.nextBest.map((i) => `${i.name || i.email} (${i.strength})`).join(", ") })) : null,
    risk.openOpportunities.length ? h("p", {}, t("risk.stake", { count: risk.openOpportunities.length,
      revenue: money.format(risk.revenueAtStake) })) : null);
}

function healthCard(view) {
  if (view.healthHidden || !view.health) return card(t("health.title"), h("p", {}, t("health.hiddenByAdmin")));
  const health = view.health;
  const scored = health.state === "scored";
  const kpis = view.kpis;
  return card(t("health.title"),
    h("div", { class: "health-head", id: "health" },
      scored ? h("p", { class: `score grade-${health.grade}` }, h("span", { class: "visually-hidden" }, t("health.score")),
        String(health.score)) : null,
      h("div", {},
        scored ? h("p", {}, h("span", { class: `pill grade-${health.grade}` }, t(`grade.${health.grade}`))) : null,
        h("p", { id: "trend" }, h("strong", {}, t("health.trend")), " ", t(`trend.${health.trend}`, {}, health.trend)),
        !scored ? h("p", {}, t(`state.${health.state}`, {}, health.state)) : null)),
    health.trendDetail ? h("p", { class: "hint" }, t("health.trendRead"), " ", health.trendDetail) : null,
    h("dl", { class: "facts" },
      h("dt", {}, t("kpi.lastInteraction")), h("dd", {}, interaction(kpis.lastInteraction)),
      h("dt", {}, t("kpi.nextInteraction")), h("dd", {}, interaction(kpis.nextInteraction))),
    health.factors.length ? [h("h3", {}, t("health.factors")), h("table", { id: "factors" },
      h("thead", {}, h("tr", {}, ["health.factor", "health.value", "health.weight", "health.points", "health.detail"]
        .map((key, i) => h("th", { scope: "col", class: i && i < 4 ? "number" : undefined }, t(key))))),
      h("tbody", {}, health.factors.map((f) => h("tr", {},
        h("th", { scope: "row" }, t(`factor.${f.name}`, {}, f.name)),
        h("td", { class: "number" }, `${Math.round(f.value * 100)} %`),
        h("td", { class: "number" }, `${Math.round(f.weight * 100)} %`),
        h("td", { class: "number" }, f.points.toFixed(1)),
        h("td", {}, f.detail)))))] : null,
    health.drivers.length ? [h("h3", {}, t("health.drivers")), h("ul", { id: "drivers" }, health.drivers.map((d) =>
      h("li", {}, t(`activity.${d.kind}`, {}, d.kind), ", ", formatDate(d.at, language()), " ",
        h("span", { class: "hint" }, t("health.driverWeight", { weight: d.weight.toFixed(2) })))))] : null);
}

function interaction(item) {
  if (!item) return "—";
  return `${t(`activity.${item.kind}`, {}, item.kind)}, ${formatDate(item.at, language())} (${t(`direction.${item.direction}`)})`;
}

function hours(minutes) {
  return new Intl.NumberFormat(language(), { maximumFractionDigits: 1 }).format(minutes / 60);
}

function kpiWidgets(view) {
  const { team, customer } = view.kpis;
  const kpis = view.kpis;
  const sent = team.emailsSent;
  const received = customer.emailsSent;
  const meetings = team.meetingsInitiated + customer.meetingsInitiated;
  const calls = team.phoneCallsMade + customer.phoneCallsMade;
  const contacted = (people, id, title) => h("div", {}, h("h3", {}, title), people.length
    ? h("ol", { id }, people.map((p) => h("li", {}, `${p.name || p.address} — `,
      t("kpi.interactions", { count: p.interactions }), h("span", { class: "hint" }, ` (${t("kpi.last")} ${formatDate(p.lastInteraction, language(), false)})`))))
    : h("p", { class: "muted" }, t("common.none")));
  const rate = (value) => (value === null || value === undefined ? t("kpi.needsExchange") : `${Math.round(value * 100)} %`);
  const delay = (value) => (value === null || value === undefined ? t("kpi.needsExchange")
    : t("kpi.hours", { hours: new Intl.NumberFormat(language(), { maximumFractionDigits: 1 }).format(value) }));
  return h("div", { class: "grid", id: "kpis" },
    card(t("kpi.summary"), h("p", { id: "kpi-summary" }, t("kpi.summaryText", {
      activities: kpis.activities, sent, received, meetings, calls }))),
    card(t("kpi.mostContacted"),
      contacted(kpis.mostContactedCustomer, "most-contacted-customer", t("kpi.theirSide")),
      contacted(kpis.mostContactedTeam, "most-contacted-team", t("kpi.ourSide"))),
    card(t("kpi.activity60"), activityChart(kpis.daily)),
    card(t("kpi.timeSpent"), h("dl", { class: "facts" },
      h("dt", {}, t("kpi.ourSide")), h("dd", {}, t("kpi.hours", { hours: hours(team.timeSpentMinutes) })),
      h("dt", {}, t("kpi.theirSide")), h("dd", {}, t("kpi.hours", { hours: hours(customer.timeSpentMinutes) })))),
    card(t("kpi.responseTime"), h("dl", { class: "facts" },
      h("dt", {}, t("kpi.ourResponseRate")), h("dd", {}, rate(team.responseRate)),
      h("dt", {}, t("kpi.ourFirstResponse")), h("dd", {}, delay(team.averageFirstResponseHours)),
      h("dt", {}, t("kpi.theirResponseRate")), h("dd", {}, rate(customer.responseRate)),
      h("dt", {}, t("kpi.theirFirstResponse")), h("dd", {}, delay(customer.averageFirstResponseHours)))),
  );
}

// -- who knows whom ----------------------------------------------------------------------------------------------

async function whoKnowsWhomCard(ctx, type, id) {
  let view;
  try {
    view = await ctx.api.get(`who-knows-whom/${type}/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && [403, 404, 409].includes(error.status)) {
      return card(t("who.title"), error.status === 409 ? featureOff(error) : h("p", {}, error.problem.detail));
    }
    throw error;
  }
  const draftArea = h("div", { id: "draft", "aria-live": "polite" });
  const introduce = async (introducer, button) => {
    button.disabled = true;
    try {
      const answer = await ctx.api.post(`who-knows-whom/${type}/${encodeURIComponent(id)}/introductions`,
        { introducerId: introducer.userId });
      if (answer.outcome === "draft") {
        draftArea.replaceChildren(draftView(answer.draft));
        draftArea.querySelector("h3").focus();
      } else {  // the colleague asks first: a request they answer
        draftArea.replaceChildren(notice("info", h("p", { id: "introduction-requested" },
          t("who.requested", { name: introducer.name || introducer.email }))));
      }
    } catch (error) {
      draftArea.replaceChildren(notice("error", h("p", {}, error instanceof ApiError ? error.problem.detail : String(error))));
    } finally {
      button.disabled = false;
    }
  };
  const strongest = Math.max(1, ...view.introducers.map((i) => i.strength));
  return card(t("who.title"),
    h("p", { class: "hint", id: "who-mode-seller" }, t(`mode.${view.mode}`), " — ", t(`mode.${view.mode}.explain`)),
    view.introducers.length
      ? h("ol", { class: "introducers", id: "introducers" }, view.introducers.map((person) => {
        const button = h("button", { type: "button", "aria-label": t("who.introduceBy", { name: person.name || person.email }) },
          t("who.getIntroduced"));
        button.addEventListener("click", () => introduce(person, button));
        return h("li", {},
          h("strong", {}, person.name || person.email), " ",
          meter(person.strength / strongest, t("who.strength", { strength: person.strength })),
          " ", h("span", { class: "hint" }, t("who.facts", { count: person.interactions,
            when: formatDate(person.lastInteraction, language(), false) })), " ", button);
      }))
      : h("p", {}, t("who.nobody")),
    draftArea);
}

function meter(share, label) {
  const bar = h("span");
  bar.style.width = `${Math.round(100 * share)}%`; // CSSOM, which the CSP allows (no inline style attribute)
  return h("span", { class: "meter", role: "img", "aria-label": label }, bar);
}

function draftView(draft) {
  const text = `${t("who.to")} ${draft.to}\n${t("who.subject")} ${draft.subject}\n\n${draft.body}`;
  const mailto = `mailto:${encodeURIComponent(draft.to)}?subject=${encodeURIComponent(draft.subject)}&body=${encodeURIComponent(draft.body)}`;
  const copied = h("span", { class: "hint", role: "status" });
  return h("div", { class: "draft" },
    h("h3", { tabindex: -1 }, t("who.draftTitle")),
    h("dl", { class: "facts" },
      h("dt", {}, t("who.to")), h("dd", { id: "draft-to" }, draft.to),
      h("dt", {}, t("who.subject")), h("dd", { id: "draft-subject" }, draft.subject)),
    h("pre", { id: "draft-body" }, draft.body),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "copy-draft", onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          copied.textContent = t("who.copied");
        } catch {
          copied.textContent = t("who.copyFailed");
        }
      } }, t("who.copy")),
      h("a", { class: "button", id: "mail-draft", href: mailto }, t("who.openMail")),
      copied));
}
