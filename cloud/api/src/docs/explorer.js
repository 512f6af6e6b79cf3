// WellPulse API explorer: renders this server's OpenAPI 3.1 document without any
// external asset. DOM is built with textContent only (never parsed as HTML), so text from the
// document cannot inject markup.
"use strict";

const SPEC_URL = "openapi.json";
const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];

// ---- small DOM helpers ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function code(text) {
  return el("code", {}, text);
}

function anchorId(kind, name) {
  return kind + "-" + String(name).replace(/[^A-Za-z0-9_-]/g, "_");
}

// ---- schemas -------------------------------------------------------------------------

let SPEC = null;

function refName(ref) {
  const prefix = "#/components/schemas/";
  return ref.startsWith(prefix) ? ref.slice(prefix.length) : ref;
}

function resolve(schema) {
  if (schema && schema.$ref) {
    const name = refName(schema.$ref);
    return ((SPEC.components || {}).schemas || {})[name] || {};
  }
  return schema || {};
}

// A one-line description of a schema's type, e.g. `string (date-time) | null`.
function typeLabel(schema) {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.oneOf || schema.anyOf) {
    return (schema.oneOf || schema.anyOf).map(typeLabel).join(" | ");
  }
  if (schema.allOf) return schema.allOf.map(typeLabel).join(" & ");
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const parts = types.map((t) => {
    if (t === "array") return "array of " + typeLabel(schema.items);
    return schema.format && t !== "null" ? t + " (" + schema.format + ")" : t;
  });
  if (schema.enum) parts.push("one of " + schema.enum.map((v) => JSON.stringify(v)).join(", "));
  return parts.join(" | ") || (schema.properties ? "object" : "any");
}

// The type of a schema as nodes, with referenced schemas as links to their section.
function typeNode(schema) {
  if (!schema) return ["any"];
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return [el("a", { class: "ref", href: "#" + anchorId("schema", name) }, name)];
  }
  const variants = schema.oneOf || schema.anyOf || schema.allOf;
  if (variants) {
    const sep = schema.allOf ? " & " : " | ";
    return variants.flatMap((v, i) => (i ? [sep] : []).concat(typeNode(v)));
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.includes("array")) {
    const rest = types.filter((t) => t !== "array" && t);
    return ["array of ", ...typeNode(schema.items), ...rest.map((t) => " | " + t)];
  }
  return [typeLabel(schema)];
}

function typeSpan(schema) {
  return el("span", { class: "type mono" }, typeNode(schema));
}

// Renders a schema as a nested list of properties (`depth` limits recursion through refs).
function renderSchema(schema, depth) {
  const box = el("div", { class: "schema" });
  const resolved = resolve(schema);
  box.append(el("div", {}, typeSpan(schema)));
  if (resolved.description && schema.$ref) box.append(el("div", { class: "doc" }, resolved.description));
  const variants = resolved.oneOf || resolved.anyOf || resolved.allOf;
  if (variants && depth > 0) variants.forEach((v) => box.append(renderSchema(v, depth - 1)));
  const props = resolved.properties || {};
  const required = new Set(resolved.required || []);
  for (const [name, prop] of Object.entries(props)) {
    const line = el("div", { class: "prop" },
      el("span", { class: "name mono" }, name),
      required.has(name) ? el("span", { class: "required" }, "required") : null,
      " ", typeSpan(prop),
      prop.description ? el("div", { class: "doc" }, prop.description) : null);
    box.append(line);
    const inner = prop.items || prop;
    if (depth > 0 && !inner.$ref && inner.properties) box.append(renderSchema(inner, depth - 1));
  }
  return box;
}

// ---- operations ----------------------------------------------------------------------

function operations() {
  const list = [];
  for (const [path, item] of Object.entries(SPEC.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const params = [...(item.parameters || []), ...(op.parameters || [])];
      list.push({ path, method, op, params, tag: (op.tags || ["other"])[0] });
    }
  }
  return list;
}

function opId(entry) {
  return anchorId("op", entry.op.operationId || entry.method + entry.path);
}

function renderParams(params) {
  if (!params.length) return el("p", { class: "doc" }, "No parameters.");
  return el("table", {},
    el("tr", {}, el("th", {}, "Name"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Description")),
    params.map((p) => el("tr", {},
      el("td", {}, el("span", { class: "mono" }, p.name), p.required ? el("span", { class: "required" }, "required") : null),
      el("td", {}, p.in),
      el("td", {}, typeSpan(p.schema)),
      el("td", {}, p.description || ""))));
}

function renderResponses(responses) {
  const rows = [];
  for (const [status, response] of Object.entries(responses || {})) {
    const content = response.content || {};
    const media = Object.keys(content);
    const body = media.map((type) => el("div", {}, code(type),
      content[type].schema ? renderSchema(content[type].schema, 1) : null));
    rows.push(el("tr", {}, el("td", {}, el("strong", {}, status)), el("td", {}, response.description || "", body)));
  }
  return el("table", {}, el("tr", {}, el("th", {}, "Status"), el("th", {}, "Body")), rows);
}

function defaultValue(param) {
  const schema = resolve(param.schema);
  if (param.example !== undefined) return param.example;
  if (schema.examples && schema.examples.length) return schema.examples[0];
  if (schema.example !== undefined) return schema.example;
  return "";
}

// The "try it" form: one input per path/query parameter; sends the request with fetch.
function renderTry(entry) {
  const inputs = entry.params.filter((p) => p.in === "path" || p.in === "query").map((p) => ({
    param: p,
    input: el("input", { name: p.name, value: defaultValue(p), placeholder: typeLabel(p.schema) }),
  }));
  const result = el("div", { class: "result" });
  const send = async () => {
    let path = entry.path;
    const query = new URLSearchParams();
    for (const { param, input } of inputs) {
      const value = input.value.trim();
      if (param.in === "path") path = path.replace("{" + param.name + "}", encodeURIComponent(value));
      else if (value !== "") query.append(param.name, value);
    }
    const url = path + (query.toString() ? "?" + query.toString() : "");
    result.replaceChildren(el("div", { class: "doc" }, "Sending " + entry.method.toUpperCase() + " " + url + " …"));
    const started = performance.now();
    try {
      const response = await fetch(url, { method: entry.method.toUpperCase(), headers: { accept: "application/json, text/plain, text/html" } });
      const elapsed = Math.round(performance.now() - started);
      const text = await response.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      if (shown.length > 200000) shown = shown.slice(0, 200000) + "\n… (truncated)";
      result.replaceChildren(
        el("div", {}, el("span", { class: "status " + (response.ok ? "ok" : "err") }, response.status + " " + response.statusText),
          "  ·  " + elapsed + " ms  ·  ", code(response.headers.get("content-type") || "")),
        el("pre", {}, "curl '" + new URL(url, location.href).href + "'"),
        el("pre", {}, shown));
    } catch (error) {
      result.replaceChildren(el("div", { class: "status err" }, "Request failed: " + error));
    }
  };
  return el("div", { class: "try" },
    el("strong", {}, "Try it"),
    inputs.map(({ param, input }) => el("label", {}, el("span", { class: "mono" }, param.name + (param.required ? " *" : "")), input)),
    el("button", { type: "button", onclick: send }, "Send"),
    result);
}

function renderOperation(entry) {
  const { op } = entry;
  return el("details", { class: "op", id: opId(entry), "data-search": (entry.method + " " + entry.path + " " + (op.summary || "")).toLowerCase() },
    el("summary", {},
      el("span", { class: "method " + entry.method }, entry.method),
      el("span", { class: "path" }, entry.path),
      el("span", { class: "summary" }, op.summary || "")),
    el("div", { class: "op-body" },
      op.description ? el("p", { class: "description" }, op.description) : null,
      el("div", { class: "doc" }, "operationId ", code(op.operationId || "")),
      el("h4", {}, "Parameters"), renderParams(entry.params),
      el("h4", {}, "Responses"), renderResponses(op.responses),
      renderTry(entry)));
}

// ---- page ----------------------------------------------------------------------------

function render() {
  const info = SPEC.info || {};
  document.title = (info.title || "API") + " " + (info.version || "");
  document.getElementById("title").textContent = info.title || "API";
  document.getElementById("meta").textContent =
    "version " + (info.version || "?") + " · OpenAPI " + (SPEC.openapi || "?") + " · " + SPEC_URL;
  document.getElementById("intro").textContent = info.description || "";

  const entries = operations();
  const tags = (SPEC.tags || []).map((t) => t.name);
  for (const e of entries) if (!tags.includes(e.tag)) tags.push(e.tag);
  const tagDocs = Object.fromEntries((SPEC.tags || []).map((t) => [t.name, t.description || ""]));

  const toc = document.getElementById("toc");
  const ops = document.getElementById("operations");
  for (const tag of tags) {
    const mine = entries.filter((e) => e.tag === tag);
    if (!mine.length) continue;
    toc.append(el("h3", {}, tag));
    ops.append(el("h2", { class: "tag-title", id: anchorId("tag", tag) }, tag),
      tagDocs[tag] ? el("p", { class: "description" }, tagDocs[tag]) : null);
    for (const entry of mine) {
      toc.append(el("a", { href: "#" + opId(entry), "data-search": (entry.method + " " + entry.path).toLowerCase(),
        onclick: () => { const d = document.getElementById(opId(entry)); if (d) d.open = true; } },
        el("span", { class: "method " + entry.method }, entry.method), el("span", { class: "mono" }, entry.path)));
      ops.append(renderOperation(entry));
    }
  }

  const schemas = (SPEC.components || {}).schemas || {};
  const box = document.getElementById("schemas");
  toc.append(el("h3", {}, "schemas"));
  for (const name of Object.keys(schemas).sort()) {
    toc.append(el("a", { href: "#" + anchorId("schema", name), "data-search": name.toLowerCase() }, el("span", { class: "mono" }, name)));
    box.append(el("details", { class: "op", id: anchorId("schema", name) },
      el("summary", {}, el("span", { class: "path" }, name),
        el("span", { class: "summary" }, (schemas[name].description || "").split("\n")[0])),
      el("div", { class: "op-body" }, renderSchema(schemas[name], 2))));
  }

  document.getElementById("filter").addEventListener("input", (event) => {
    const needle = event.target.value.trim().toLowerCase();
    for (const node of document.querySelectorAll("[data-search]")) {
      node.classList.toggle("hidden", needle !== "" && !node.dataset.search.includes(needle));
    }
  });
  openFromHash();
  window.addEventListener("hashchange", openFromHash);
}

function openFromHash() {
  const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === "DETAILS") {
    target.open = true;
    target.scrollIntoView();
  }
}

async function main() {
  try {
    const response = await fetch(SPEC_URL, { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(SPEC_URL + " answered " + response.status);
    SPEC = await response.json();
    render();
    document.body.dataset.ready = "true";
  } catch (error) {
    const box = document.getElementById("error");
    box.textContent = "Cannot load the API description: " + error;
    box.classList.remove("hidden");
    document.getElementById("meta").textContent = "error";
    document.body.dataset.ready = "error";
  }
}

main();
