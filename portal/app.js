// The portal's entry point: configuration, sign-in, who the caller is (GET /api/me), then hash routes.
import * as admin from "./admin.js";
import { ApiError, createApi, forNavigation } from "./api.js";
import { createAuth } from "./auth.js";
import { language, setLanguage, t } from "./i18n.js";
import * as seller from "./seller.js";
import { focusHeading, h, notice, show } from "./ui.js";

const MANAGE = "settings.manage";
const READ = "insights.read";
const AT_RISK = "relationshipsAtRisk.read";

// route → [render, permission it needs, nav label key]
const ROUTES = {
  "#/overview": [(ctx) => admin.overview(ctx), MANAGE, "nav.overview"],
  "#/options": [(ctx) => admin.options(ctx), MANAGE, "nav.options"],
  "#/exclusions": [(ctx) => admin.exclusions(ctx), MANAGE, "nav.exclusions"],
  "#/audit": [(ctx) => admin.audit(ctx), MANAGE, "nav.audit"],
  "#/records": [(ctx, query) => seller.records(ctx, query), READ, "nav.records"],
  "#/at-risk": [(ctx) => seller.atRisk(ctx), AT_RISK, "nav.atRisk"],
};

let navigations = 0;
let signedInApi = null;
const ctx = { api: null, auth: null, me: null, flash: null, consentOutcome: null, routed: false, can: () => false };

function staticTexts() {
  document.documentElement.lang = language();
  document.getElementById("skip-link").textContent = t("app.skip");
  document.getElementById("brand").textContent = t("app.title");
  document.getElementById("language-label").textContent = t("app.language");
  document.getElementById("language").value = language();
  document.getElementById("nav").setAttribute("aria-label", t("nav.label"));
  const signOut = document.getElementById("sign-out");
  signOut.textContent = t("app.signOut");
  const who = document.getElementById("who");
  who.textContent = ctx.auth && ctx.auth.account ? t("app.signedInAs", { name: ctx.auth.account.name || ctx.auth.account.username }) : "";
}

function navigation() {
  const nav = document.getElementById("nav");
  if (!ctx.me) {
    nav.replaceChildren();
    return;
  }
  const current = window.location.hash.split("?")[0] || "#/";
  const links = Object.entries(ROUTES).filter(([, [, permission]]) => ctx.can(permission));
  nav.replaceChildren(h("ul", {}, links.map(([route, [, , label]]) => h("li", {},
    h("a", { href: route, "aria-current": current === route || (route === "#/records" && current.startsWith("#/record/")) ? "page" : undefined },
      t(label))))));
}

function homeRoute() {
  if (ctx.can(MANAGE)) return "#/overview";
  if (ctx.can(READ)) return "#/records";
  return null;
}

function refusal(permission) {
  const roles = ctx.me.roles.length ? ctx.me.roles.join(", ") : t("common.none");
  show(h("h1", {}, t("refused.title")),
    notice("error", h("p", {}, t({ [MANAGE]: "refused.admin", [AT_RISK]: "refused.manager" }[permission] || "refused.seller")),
      h("p", {}, t("refused.roles", { roles }))),
    homeRoute() ? h("p", {}, h("a", { href: homeRoute() }, t("refused.home"))) : null);
}

function failure(error) {
  if (error instanceof ApiError && error.status === 401) {
    show(h("h1", {}, t("session.title")), notice("warning", h("p", {}, t("session.ended"))),
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => ctx.auth.signIn(window.location.hash) },
        t("app.signIn"))));
    return;
  }
  if (error instanceof ApiError && error.status === 403) {
    show(h("h1", {}, t("refused.title")), notice("error", h("p", {}, error.problem.detail)));
    return;
  }
  const detail = error instanceof ApiError
    ? (error.status ? `${error.problem.title || error.status}: ${error.problem.detail || ""}` : t("error.network"))
    : String(error && error.message ? error.message : error);
  show(h("h1", {}, t("error.title")), notice("error", h("p", {}, detail)),
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => route() }, t("error.retry"))));
}

async function route() {
  const visit = ++navigations;
  ctx.api = forNavigation(signedInApi, () => visit === navigations);
  staticTexts();
  navigation();
  const [path, search] = (window.location.hash || "#/").split("?");
  const query = Object.fromEntries(new URLSearchParams(search || ""));
  try {
    const record = path.match(/^#\/record\/(contact|account|lead|opportunity)\/(.+)$/);
    if (record) {
      if (!ctx.can(READ)) return refusal(READ);
      await seller.record(ctx, record[1], decodeURIComponent(record[2]));
    } else if (ROUTES[path]) {
      const [render, permission] = ROUTES[path];
      if (!ctx.can(permission)) return refusal(permission);
      await render(ctx, query);
    } else {
      const home = homeRoute();
      if (home) {
        window.location.replace(home);
        return undefined;
      }
      refusal(READ);
    }
    // A new page announces itself (its heading takes the focus); the first one leaves the focus at the top,
    // where the skip link is the first stop.
    if (ctx.routed) focusHeading();
    ctx.routed = true;
  } catch (error) {
    failure(error);
  }
  return undefined;
}

function signInPage(problem) {
  show(h("h1", {}, t("app.title")),
    problem ? notice("error", h("p", {}, problem)) : null,
    h("p", {}, t("signIn.intro")),
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "sign-in",
      onclick: () => ctx.auth.signIn(window.location.hash) }, t("app.signIn"))));
  focusHeading();
}

async function start() {
  const languageSelect = document.getElementById("language");
  languageSelect.addEventListener("change", () => {
    setLanguage(languageSelect.value);
    if (ctx.me) route();
    else signInPage();
  });
  document.getElementById("sign-out").addEventListener("click", () => ctx.auth.signOut());
  // The hash holds the route: the skip link moves the focus itself instead of navigating to #main.
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  staticTexts();

  // Back from the consent callback: ?consent=granted|declined|invalid (kept until signed in).
  const params = new URLSearchParams(window.location.search);
  if (params.has("consent")) {
    sessionStorage.setItem("ri.consent", params.get("consent"));
    window.history.replaceState(null, "", `${window.location.pathname}#/overview`);
  }

  const config = await (await fetch("config.json", { cache: "no-cache" })).json();
  let problem = null;
  try {
    ctx.auth = await createAuth(config);
  } catch (error) {
    // e.g. the sign-in was cancelled on the identity provider's page
    problem = t("signIn.failed", { detail: error.errorMessage || error.message || String(error) });
    ctx.auth = await createAuth(config);
  }
  if (!ctx.auth.account) {
    signInPage(problem);
    return;
  }
  if (ctx.auth.returnTo) window.history.replaceState(null, "", `${window.location.pathname}${ctx.auth.returnTo}`);
  signedInApi = createApi(config.apiBaseUrl, () => ctx.auth.token());
  ctx.api = signedInApi;
  try {
    ctx.me = await ctx.api.get("me");
  } catch (error) {
    staticTexts();
    failure(error);
    return;
  }
  ctx.can = (permission) => ctx.me.permissions.includes(permission);
  ctx.consentOutcome = sessionStorage.getItem("ri.consent");
  sessionStorage.removeItem("ri.consent");
  document.getElementById("sign-out").hidden = false;
  window.addEventListener("hashchange", () => route());
  await route();
}

start().catch((error) => {
  show(h("h1", {}, t("error.title")), notice("error", h("p", {}, String(error && error.message ? error.message : error))));
});
