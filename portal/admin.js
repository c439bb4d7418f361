// The admin pages: Overview (status, prerequisites, banner, Enable/Disable, security roles, Exchange, consent,
// sync), Options, excluded groups, audit. Each form sends If-Match with the ETag it was built from; the API's
// problems appear beside the fields they name; a 412 or 409 says what changed and shows the current settings.
import { ApiError } from "./api.js";
import { language, t } from "./i18n.js";
import {
  announce, checkbox, clearProblems, field, formatDate, group, h, nextId, notice, select, show, showProblem,
} from "./ui.js";

const BASE = "relationship-intelligence";
const LOCATIONS = {
  EMEA: ["AT", "FI", "FR", "GB", "IE", "NL"],
  APAC: ["HK", "JP", "MY", "SG", "KR"],
  Americas: ["BR", "CL", "US"],
  other: ["AE", "AU", "CA", "CH", "DE", "IN", "NO", "ZA"],
};
const FREQUENCIES = ["daily", "weekly", "everyTwoWeeks", "monthly", "quarterly"];
const INFLUENCES = ["email", "meeting", "phoneCall", "task"];
const PLACEHOLDERS = ["introducer", "target", "requester"];

// -- shared machinery -------------------------------------------------------------------------------------------

function yesNo(value) {
  return value ? t("common.yes") : t("common.no");
}

function display(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return yesNo(value);
  if (Array.isArray(value)) return value.length ? value.join(", ") : t("common.none");
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return formatDate(value, language());
  return String(value);
}

function flatten(value, prefix = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out[prefix] = Array.isArray(value) ? [...value].sort() : value;
  }
  return out;
}

/** What differs between two Overview documents, in words ("Exchange integration: yes → no"). */
export function changesBetween(before, after) {
  const ignored = new Set(["etag", "changed", "banner.daysLeft", "banner.message"]);
  const old = flatten(before);
  const now = flatten(after);
  const lines = [];
  for (const path of new Set([...Object.keys(old), ...Object.keys(now)])) {
    if (ignored.has(path) || JSON.stringify(old[path]) === JSON.stringify(now[path])) continue;
    lines.push(`${t(`path.${path}`, {}, path)}: ${display(old[path])} → ${display(now[path])}`);
  }
  return lines;
}

function describeProblem(entry) {
  return t("problem.field", { reason: entry.reason });
}

/**
 * Sends a change; on success re-renders with the new Overview. Field problems (400, 422) stay in the form and
 * change nothing; a 412 (someone else saved first) or 409 (a rule of the product) reloads and says why.
 */
async function change(ctx, form, base, send, rerender, success) {
  clearProblems(form);
  // The page is drawn again after the answer: keyboard focus goes back to the same control (by id).
  const focused = document.activeElement && document.activeElement.id;
  const refocus = () => {
    const again = focused && document.getElementById(focused);
    if (again) again.focus();
  };
  const buttons = [...form.querySelectorAll("button, input")];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const next = await send(base.etag);
    ctx.flash = notice("success", h("p", {}, next.changed === false ? t("saved.unchanged") : success));
    await rerender(next);
    refocus();
  } catch (error) {
    buttons.forEach((b) => { b.disabled = false; });
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 412 || error.status === 409) {
      const fresh = await ctx.api.get(BASE);
      const lines = error.status === 412 ? changesBetween(base, fresh) : [];
      const explanation = error.status === 412 ? t("conflict.stale") : t("conflict.rule", { detail: error.problem.detail });
      ctx.flash = notice("warning", h("p", {}, explanation),
        lines.length ? h("ul", {}, lines.map((line) => h("li", {}, line))) : null,
        h("p", {}, t("conflict.reloaded")));
      await rerender(fresh);
      refocus();
      const missing = error.problem.missingPrerequisite;
      if (missing) {
        const prerequisites = document.getElementById("prerequisites-form");
        if (prerequisites) {
          showProblem(prerequisites, { detail: error.problem.detail,
            errors: [{ field: missing, reason: error.problem.detail }] }, describeProblem);
        }
      }
      return;
    }
    if (error.status === 403) {
      showProblem(form, { detail: t("refused.action", { detail: error.problem.detail }) });
      return;
    }
    showProblem(form, error.status ? error.problem : { detail: t("error.network") }, describeProblem);
  }
}

function flashOf(ctx) {
  const flash = ctx.flash;
  ctx.flash = null;
  return flash;
}

function card(title, ...children) {
  const id = nextId("h");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

// -- Overview ---------------------------------------------------------------------------------------------------

export async function overview(ctx) {
  const [current, catalogue] = await Promise.all([ctx.api.get(BASE), ctx.api.get("security-roles")]);
  renderOverview(ctx, current, catalogue);
}

function consentOutcome(ctx) {
  const outcome = ctx.consentOutcome;
  ctx.consentOutcome = null;
  if (!outcome) return null;
  const kind = outcome === "granted" ? "success" : "error";
  return notice(kind, h("p", {}, h("strong", {}, t(`consent.outcome.${outcome}`, {}, t("consent.outcome.invalid")))));
}

function bannerOf(ctx, overviewDoc) {
  const banner = overviewDoc.banner;
  if (!banner) return null;
  const id = nextId("banner");
  const deadline = banner.deadline ? formatDate(banner.deadline, language()) : null;
  const consentNeeded = ["consentPending", "consentDeclined", "consentWithdrawn"].includes(banner.kind);
  return h("section", { class: "banner", id: "banner", "aria-labelledby": id },
    h("h2", { id }, t(`banner.${banner.kind}.title`)),
    banner.daysLeft !== null && banner.daysLeft !== undefined
      ? h("p", { class: "days-left" }, t("banner.daysLeft", { days: banner.daysLeft, deadline })) : null,
    h("p", {}, t(`banner.${banner.kind}.text`, { deadline, when: formatDate(overviewDoc.autoDisabledAt, language()) })),
    consentNeeded && overviewDoc.exchange.integrationEnabled ? consentButton(ctx) : null);
}

function consentButton(ctx) {
  const holder = h("div", { class: "actions" });
  const button = h("button", { type: "button", class: "primary", id: "give-consent",
    onclick: async () => {
      button.disabled = true;
      try {
        const link = await ctx.api.post(`${BASE}/consent-requests`);
        announce(t("consent.leaving"));
        window.location.assign(link.consentUrl);
      } catch (error) {
        button.disabled = false;
        holder.append(notice("error", h("p", {}, error instanceof ApiError ? error.problem.detail : String(error))));
      }
    } }, t("consent.give"));
  holder.append(button, h("span", { class: "hint" }, t("consent.explain")));
  return holder;
}

function renderOverview(ctx, current, catalogue) {
  const rerender = async (next) => renderOverview(ctx, next, catalogue);
  const enabled = current.status === "enabled";
  const prerequisites = current.prerequisites;
  show(
    h("h1", {}, t("overview.title")),
    flashOf(ctx),
    consentOutcome(ctx),
    bannerOf(ctx, current),
    statusCard(ctx, current, rerender),
    prerequisitesCard(ctx, current, rerender),
    rolesCard(ctx, current, catalogue, rerender),
    exchangeCard(ctx, current, rerender),
    syncCard(ctx, current, rerender),
    enabled && !prerequisites.exchangeDataEligible
      ? notice("warning", h("p", {}, t("exchange.unavailable"))) : null,
  );
}

function statusCard(ctx, current, rerender) {
  const form = h("form", { novalidate: true, onsubmit: (event) => event.preventDefault() });
  const enabled = current.status === "enabled";
  const features = current.features;
  form.append(
    h("dl", { class: "facts" },
      h("dt", {}, t("overview.status")),
      h("dd", { id: "status", class: `status-${current.status}` }, t(`status.${current.status}`)),
      current.enabledAt ? [h("dt", {}, t("overview.enabledAt")), h("dd", {}, formatDate(current.enabledAt, language()))] : null,
      h("dt", {}, t("feature.analytics")), h("dd", {}, features.relationshipAnalytics.enabled ? t("common.on") : t("common.off")),
      h("dt", {}, t("feature.whoKnowsWhom")), h("dd", {}, features.whoKnowsWhom.enabled
        ? `${t("common.on")} (${t(`mode.${features.whoKnowsWhom.mode}`)})` : t("common.off")),
      current.autoDisabledAt ? [h("dt", {}, t("overview.autoDisabledAt")),
        h("dd", {}, formatDate(current.autoDisabledAt, language()))] : null),
    h("div", { class: "actions" },
      enabled
        ? h("button", { type: "button", id: "disable", onclick: () => {
          if (!window.confirm(t("overview.disableConfirm"))) return;
          change(ctx, form, current, (etag) => ctx.api.post(`${BASE}/disable`, undefined, etag), rerender, t("saved.disabled"));
        } }, t("overview.disable"))
        : h("button", { type: "button", class: "primary", id: "enable", onclick: () =>
          change(ctx, form, current, (etag) => ctx.api.post(`${BASE}/enable`, {}, etag), rerender, t("saved.enabled")),
        }, t("overview.enable")),
      h("span", { class: "hint" }, enabled ? t("overview.disableHint") : t("overview.enableHint"))));
  return card(t("overview.statusTitle"), form);
}

function locationSelect(currentCode) {
  const names = new Intl.DisplayNames([language()], { type: "region" });
  const control = h("select", { name: "office365DataLocation" },
    h("option", { value: "", selected: !currentCode }, t("prerequisites.chooseLocation")));
  const known = new Set(Object.values(LOCATIONS).flat());
  for (const [geography, codes] of Object.entries(LOCATIONS)) {
    const extra = geography === "other" && currentCode && !known.has(currentCode) ? [currentCode] : [];
    control.append(h("optgroup", { label: t(`geography.${geography}`) },
      [...codes, ...extra].map((code) => h("option", { value: code, selected: code === currentCode },
        `${names.of(code)} (${code})`))));
  }
  return control;
}

function prerequisitesCard(ctx, current, rerender) {
  const prerequisites = current.prerequisites;
  const premium = checkbox({ label: t("prerequisites.premium"), checked: prerequisites.salesInsightsPremium,
    id: "premium" });
  const location = locationSelect(prerequisites.office365DataLocation);
  location.id = "location";
  const form = h("form", { id: "prerequisites-form", novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    change(ctx, form, current, (etag) => ctx.api.put(`${BASE}/prerequisites`, {
      salesInsightsPremium: premium.input.checked, office365DataLocation: location.value,
    }, etag), rerender, t("saved.prerequisites"));
  } },
  h("div", { class: "field", dataset: { field: "salesInsightsPremium" } }, premium.element,
    h("p", { class: "hint" }, t("prerequisites.premiumHint"))),
  field({ label: t("prerequisites.location"), control: location, field: "office365DataLocation",
    hint: t("prerequisites.locationHint") }),
  h("dl", { class: "facts" },
    h("dt", {}, t("prerequisites.geography")),
    h("dd", { id: "geography" }, prerequisites.geography ? t(`geography.${prerequisites.geography}`, {}, prerequisites.geography) : "—"),
    h("dt", {}, t("prerequisites.eligible")),
    h("dd", { id: "eligible" }, prerequisites.office365DataLocation ? yesNo(prerequisites.exchangeDataEligible) : "—")),
  h("div", { class: "actions" }, h("button", { type: "submit", id: "save-prerequisites" }, t("common.save"))));
  return card(t("prerequisites.title"), form);
}

function rolesCard(ctx, current, catalogue, rerender) {
  const selected = new Set(current.exchange.securityRoleIds.map((id) => id.toLowerCase()));
  const boxes = catalogue.roles.map((role) => checkbox({ label: role.name, name: "securityRoleIds", value: role.id,
    checked: selected.has(role.id.toLowerCase()) }));
  const form = h("form", { id: "roles-form", novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    const ids = boxes.filter((box) => box.input.checked).map((box) => box.input.value);
    change(ctx, form, current, (etag) => ctx.api.put(`${BASE}/security-roles`, { securityRoleIds: ids }, etag),
      rerender, t("saved.roles"));
  } },
  group({ legend: t("roles.legend"), field: "securityRoleIds", hint: t("roles.hint") },
    h("div", { class: "checks" }, boxes.map((box) => box.element))),
  catalogue.source === "standard" ? h("p", { class: "hint" }, t("roles.standardCatalogue")) : null,
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "save-roles" }, t("common.save"))));
  return card(t("roles.title"), form);
}

function exchangeCard(ctx, current, rerender) {
  const exchange = current.exchange;
  const consent = exchange.consent;
  const eligible = current.prerequisites.exchangeDataEligible;
  const enabled = current.status === "enabled";
  const toggle = checkbox({ label: t("exchange.toggle"), checked: exchange.integrationEnabled, role: "switch",
    id: "exchange-toggle" });
  toggle.input.disabled = !enabled || !eligible;
  const form = h("form", { id: "exchange-form", novalidate: true, onsubmit: (event) => event.preventDefault() },
    h("div", { class: "field", dataset: { field: "enabled" } }, toggle.element,
      h("p", { class: "hint" }, !enabled ? t("exchange.needsEnable") : eligible ? t("exchange.hint") : t("exchange.unavailable"))));
  toggle.input.addEventListener("change", () => change(ctx, form, current,
    (etag) => ctx.api.put(`${BASE}/exchange-integration`, { enabled: toggle.input.checked }, etag), rerender,
    toggle.input.checked ? t("saved.exchangeOn") : t("saved.exchangeOff")));
  const consentNeeded = exchange.integrationEnabled && !["granted", "notRequired"].includes(consent.status);
  return card(t("exchange.title"), form,
    h("h3", {}, t("consent.title")),
    h("dl", { class: "facts" },
      h("dt", {}, t("consent.status")), h("dd", { id: "consent-status" }, t(`consentStatus.${consent.status}`)),
      consent.deadline ? [h("dt", {}, t("consent.deadline")), h("dd", {}, formatDate(consent.deadline, language()))] : null,
      consent.grantedAt ? [h("dt", {}, t("consent.grantedAt")), h("dd", {}, formatDate(consent.grantedAt, language()))] : null,
      consent.declinedReason ? [h("dt", {}, t("consent.declinedReason")), h("dd", {}, consent.declinedReason)] : null),
    consentNeeded && !current.banner ? consentButton(ctx) : null);
}

/** Where the CRM lives (its Dataverse environment URL) and how each source's rounds went (`dataSources`). */
function syncCard(ctx, current, rerender) {
  const url = h("input", { type: "url", name: "environmentUrl", id: "crm-url", value: current.crmEnvironmentUrl || "",
    placeholder: "https://contoso.crm4.dynamics.com", autocomplete: "off", spellcheck: "false" });
  const form = h("form", { id: "crm-form", novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    const value = url.value.trim();
    change(ctx, form, current, (etag) => ctx.api.put(`${BASE}/crm-environment`, { environmentUrl: value || null }, etag),
      rerender, value ? t("saved.crmEnvironment") : t("saved.crmEnvironmentCleared"));
  } },
  field({ label: t("sync.environmentUrl"), control: url, field: "environmentUrl", hint: t("sync.environmentUrlHint") }),
  h("div", { class: "actions" }, h("button", { type: "submit", id: "save-crm" }, t("common.save"))));
  const sources = current.dataSources;
  if (!sources) return card(t("sync.title"), form);
  const { crm, exchange } = sources;
  const error = (e) => (e ? `${e.message} (${formatDate(e.at, language())})` : t("common.none"));
  const rows = [
    [t("sync.crm"), crm.environmentUrl ? (crm.roundRunning ? t("sync.running") : t("sync.idle")) : t("sync.notSet"),
      formatDate(crm.lastSuccessAt, language()), crm.itemsInLastRound ?? "—", "—", error(crm.lastError)],
    [t("sync.exchange"), t("sync.mailboxesOf", { synced: exchange.mailboxesSynced, total: exchange.mailboxes,
      failing: exchange.mailboxesFailing }), formatDate(exchange.lastSuccessAt, language()),
    exchange.itemsInLastRound, exchange.mailboxes, error(exchange.lastError)],
  ];
  return card(t("sync.title"), form, h("table", { id: "sync-status" },
    h("thead", {}, h("tr", {}, ["sync.source", "sync.state", "sync.lastSuccess", "sync.items", "sync.mailboxes",
      "sync.lastError"].map((key) => h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, rows.map(([name, ...cells]) => h("tr", {}, h("th", { scope: "row" }, name),
      cells.map((cell, i) => h("td", { class: i === 2 || i === 3 ? "number" : null }, String(cell))))))));
}

// -- Options ------------------------------------------------------------------------------------------------

export async function options(ctx) {
  renderOptions(ctx, await ctx.api.get(BASE));
}

function numberInput(value, attributes = {}) {
  return h("input", { type: "number", inputmode: "numeric", step: 1, value, ...attributes });
}

function renderOptions(ctx, current) {
  const rerender = async (next) => renderOptions(ctx, next);
  const analytics = current.features.relationshipAnalytics;
  const who = current.features.whoKnowsWhom;

  const healthDisplay = checkbox({ label: t("options.healthDisplay"), checked: analytics.healthDisplay, role: "switch",
    id: "health-display" });
  const influence = Object.fromEntries(INFLUENCES.map((kind) => [kind, numberInput(analytics.activityInfluence[kind],
    { min: -50, max: 50, id: `influence-${kind}` })]));
  const frequency = select(FREQUENCIES.map((f) => [f, t(`frequency.${f}`)]), analytics.communicationFrequency);
  frequency.id = "frequency";
  const goodMin = numberInput(analytics.grading.goodMin, { id: "good-min", min: 2, max: 100 });
  const fairMin = numberInput(analytics.grading.fairMin, { id: "fair-min", min: 1, max: 99 });
  const bands = h("p", { class: "hint", id: "bands" });
  const describeBands = () => {
    const good = Number(goodMin.value);
    const fair = Number(fairMin.value);
    bands.textContent = t("options.bands", { good, fair, fairTop: good - 1, poorTop: fair - 1 });
  };
  goodMin.addEventListener("input", describeBands);
  fairMin.addEventListener("input", describeBands);
  describeBands();

  const number = (input) => (input.value.trim() === "" ? null : Number(input.value));
  const analyticsForm = h("form", { id: "analytics-form", novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    change(ctx, analyticsForm, current, (etag) => ctx.api.put(`${BASE}/features/relationship-analytics`, {
      healthDisplay: healthDisplay.input.checked,
      activityInfluence: Object.fromEntries(INFLUENCES.map((kind) => [kind, number(influence[kind])])),
      communicationFrequency: frequency.value,
      grading: { goodMin: number(goodMin), fairMin: number(fairMin) },
    }, etag), rerender, t("saved.analytics"));
  } },
  h("div", { class: "field", dataset: { field: "healthDisplay" } }, healthDisplay.element,
    h("p", { class: "hint" }, t("options.healthDisplayHint"))),
  group({ legend: t("options.influence"), field: "activityInfluence", hint: t("options.influenceHint") },
    h("div", { class: "inline-fields" }, INFLUENCES.map((kind) => field({
      label: t(`influence.${kind}`), control: influence[kind], field: `activityInfluence/${kind}` })))),
  field({ label: t("options.frequency"), control: frequency, field: "communicationFrequency",
    hint: t("options.frequencyHint") }),
  group({ legend: t("options.grading"), field: "grading" },
    h("div", { class: "inline-fields" },
      field({ label: t("options.goodMin"), control: goodMin, field: "grading/goodMin" }),
      field({ label: t("options.fairMin"), control: fairMin, field: "grading/fairMin" })),
    bands),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "save-analytics" }, t("common.save"))));

  const whoEnabled = checkbox({ label: t("options.whoEnabled"), checked: who.enabled, role: "switch", id: "who-enabled" });
  const subject = h("input", { type: "text", id: "template-subject", value: who.introductionEmailTemplate.subject,
    maxlength: 255 });
  const body = h("textarea", { id: "template-body", rows: 8 }, who.introductionEmailTemplate.body);
  let lastFocused = body;
  [subject, body].forEach((control) => control.addEventListener("focus", () => { lastFocused = control; }));
  const insert = (name) => {
    const control = lastFocused;
    const text = `{${name}}`;
    const start = control.selectionStart ?? control.value.length;
    const end = control.selectionEnd ?? start;
    control.value = control.value.slice(0, start) + text + control.value.slice(end);
    control.focus();
    control.setSelectionRange(start + text.length, start + text.length);
  };
  const whoForm = h("form", { id: "who-form", novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    change(ctx, whoForm, current, (etag) => ctx.api.put(`${BASE}/features/who-knows-whom`, {
      enabled: whoEnabled.input.checked,
      introductionEmailTemplate: { subject: subject.value, body: body.value },
    }, etag), rerender, t("saved.whoKnowsWhom"));
  } },
  h("p", { id: "who-mode" }, h("strong", {}, t("options.mode")), " ", t(`mode.${who.mode}`), " — ",
    t(`mode.${who.mode}.explain`)),
  h("div", { class: "field", dataset: { field: "enabled" } }, whoEnabled.element),
  group({ legend: t("options.template"), field: "introductionEmailTemplate", hint: t("options.placeholders") },
    field({ label: t("options.subject"), control: subject, field: "introductionEmailTemplate/subject" }),
    field({ label: t("options.body"), control: body, field: "introductionEmailTemplate/body" }),
    h("div", { class: "actions", role: "group", "aria-label": t("options.insert") },
      PLACEHOLDERS.map((name) => h("button", { type: "button", onclick: () => insert(name) },
        t("options.insertOne", { name: `{${name}}`, meaning: t(`placeholder.${name}`) }))))),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "save-who" }, t("common.save"))));

  show(
    h("h1", {}, t("options.title")),
    flashOf(ctx),
    current.status !== "enabled" ? notice("warning", h("p", {}, t("options.notEnabled"))) : null,
    card(t("options.analyticsTitle"), analyticsForm),
    card(t("options.whoTitle"), whoForm),
  );
}

// -- Excluded security groups ----------------------------------------------------------------------------------

export async function exclusions(ctx) {
  renderExclusions(ctx, await ctx.api.get(BASE));
}

function renderExclusions(ctx, current) {
  const rerender = async (next) => renderExclusions(ctx, next);
  const area = h("textarea", { id: "groups", rows: 8, spellcheck: "false" },
    current.exchange.excludedSecurityGroupIds.join("\n"));
  const form = h("form", { id: "groups-form", novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    const ids = area.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
    change(ctx, form, current, (etag) => ctx.api.put(`${BASE}/excluded-security-groups`, { groupIds: ids }, etag),
      rerender, t("saved.groups"));
  } },
  field({ label: t("groups.label"), control: area, field: "groupIds", hint: t("groups.hint") }),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "save-groups" }, t("common.save"))));
  show(h("h1", {}, t("groups.title")), flashOf(ctx), card(t("groups.title"), form));
}

// -- Audit ------------------------------------------------------------------------------------------------------

export async function audit(ctx, tokens = [null], pageSize = 20) {
  const token = tokens[tokens.length - 1];
  const page = await ctx.api.get(`${BASE}/audit`, { pageSize, continuationToken: token });
  const size = select([5, 10, 20, 50, 100].map((n) => [String(n), String(n)]), String(pageSize));
  size.id = "page-size";
  size.addEventListener("change", () => audit(ctx, [null], Number(size.value)));
  const rows = page.events.map((event) => h("tr", {},
    h("td", {}, formatDate(event.at, language())),
    h("td", { class: "code" }, event.actor),
    h("td", {}, t(`action.${event.action}`, {}, event.action)),
    h("td", {}, event.changes.length ? h("ul", {}, event.changes.map((c) => h("li", {},
      `${t(`path.${c.field}`, {}, c.field)}: ${display(c.old)} → ${display(c.new)}`))) : "—")));
  show(
    h("h1", {}, t("audit.title")),
    h("p", { class: "hint" }, t("audit.hint")),
    field({ label: t("audit.pageSize"), control: size }),
    page.events.length
      ? h("table", { id: "audit-table" },
        h("caption", { class: "visually-hidden" }, t("audit.caption", { page: tokens.length })),
        h("thead", {}, h("tr", {}, ["audit.when", "audit.who", "audit.action", "audit.changes"]
          .map((key) => h("th", { scope: "col" }, t(key))))),
        h("tbody", {}, rows))
      : h("p", {}, t("audit.empty")),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "audit-newer", disabled: tokens.length < 2,
        onclick: () => audit(ctx, tokens.slice(0, -1), pageSize) }, t("audit.newer")),
      h("span", {}, t("audit.page", { page: tokens.length })),
      h("button", { type: "button", id: "audit-older", disabled: !page.continuationToken,
        onclick: () => audit(ctx, [...tokens, page.continuationToken], pageSize) }, t("audit.older"))),
  );
}
