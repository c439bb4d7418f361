// DOM helpers: elements built from data (never from HTML strings), field problems shown beside their fields.
import { t } from "./i18n.js";

/** h("p", {class: "x"}, "text", child…): an element; attributes starting with "on" are listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** SVG elements (same calling convention as h). */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Replaces the page's content; moves focus to its heading so that screen readers announce the new page. */
export function show(...children) {
  const main = document.getElementById("main");
  main.replaceChildren();
  append(main, children);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    document.title = `${heading.textContent} · ${t("app.title")}`;
  }
  return main;
}

export function focusHeading() {
  const heading = document.querySelector("#main h1");
  if (heading) heading.focus();
}

export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 30);
}

export function notice(kind, ...children) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

/** A labelled field: label, control, hint, and a slot for the API's problem. `field` is the API's field path. */
export function field({ label, control, hint, field: path }) {
  const id = control.id || nextId("f");
  control.id = id;
  const hintElement = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintElement) control.setAttribute("aria-describedby", hintElement.id);
  const wrapper = h("div", { class: "field", dataset: path ? { field: path } : undefined },
    h("label", { for: id }, label), control, hintElement);
  return wrapper;
}

/** A fieldset that stands for one API field (e.g. "grading", "securityRoleIds"). */
export function group({ legend, field: path, hint }, ...children) {
  const id = nextId("g");
  const hintElement = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  return h("fieldset", { id, dataset: path ? { field: path } : undefined,
    "aria-describedby": hintElement ? hintElement.id : undefined },
  h("legend", {}, legend), hintElement, ...children);
}

export function checkbox({ label, checked, name, value, role, id }) {
  const input = h("input", { type: "checkbox", id: id || nextId("c"), name, value, role, checked: !!checked });
  return { input, element: h("div", { class: "check" }, input, h("label", { for: input.id }, label)) };
}

export function select(options, current) {
  return h("select", {}, options.map(([value, text]) => h("option", { value, selected: value === current }, text)));
}

/** Removes the problems shown in a form. */
export function clearProblems(form) {
  form.querySelectorAll(".field-error, .form-problem").forEach((node) => node.remove());
  form.querySelectorAll("[aria-invalid]").forEach((node) => {
    node.removeAttribute("aria-invalid");
    const described = (node.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.startsWith("err-"));
    if (described.length) node.setAttribute("aria-describedby", described.join(" "));
    else node.removeAttribute("aria-describedby");
  });
}

/**
 * Shows a problem document in a form: each `errors[]` entry beside the element whose data-field is the longest
 * prefix of its field path ("securityRoleIds/2" goes to "securityRoleIds"), the rest at the top of the form.
 */
export function showProblem(form, problem, describe = (entry) => entry.reason) {
  clearProblems(form);
  const targets = [...form.querySelectorAll("[data-field]")];
  const general = [];
  let first = null;
  for (const entry of problem.errors || []) {
    const path = entry.field || "";
    const target = targets
      .filter((node) => path === node.dataset.field || path.startsWith(`${node.dataset.field}/`))
      .sort((a, b) => b.dataset.field.length - a.dataset.field.length)[0];
    if (!target) {
      general.push(entry);
      continue;
    }
    const message = h("p", { class: "field-error", id: nextId("err") }, describe(entry));
    const control = target.matches("fieldset") ? target : target.querySelector("input, select, textarea");
    const anchor = target.matches("fieldset") ? target.querySelector("legend") : control;
    anchor.after(message);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", `${control.getAttribute("aria-describedby") || ""} ${message.id}`.trim());
    first = first || control;
  }
  if (general.length || !(problem.errors || []).length) {
    const box = h("div", { class: "notice error form-problem", role: "alert" },
      h("p", {}, problem.detail || problem.title || t("error.unknown")),
      general.length ? h("ul", {}, general.map((entry) => h("li", {}, entry.field ? `${entry.field}: ` : "",
        describe(entry)))) : null);
    form.prepend(box);
  } else {
    form.prepend(h("p", { class: "form-problem visually-hidden", role: "alert" }, problem.detail || ""));
  }
  if (first && first.focus) first.focus();
}

export function formatDate(iso, lang, withTime = true) {
  if (!iso) return "—";
  const date = new Date(iso);
  return new Intl.DateTimeFormat(lang, withTime ? { dateStyle: "medium", timeStyle: "short" } : { dateStyle: "medium" })
    .format(date);
}
