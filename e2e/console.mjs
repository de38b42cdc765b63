// The console, GraphiQL and the API docs in headless Chromium with every
// request to another origin blocked (and recorded), an axe-core check on each
// console page, and the console's flows: a viewer looks around and finds no
// write control; an admin creates and revokes a key; signing out ends the session.
//
// usage: node console.mjs <base url> <viewer key> <admin key> <facets per persona>
// env:   CHROMIUM (default /usr/bin/chromium)
// Prints {"pages", "personaCharts", "violations", "blocked"}; exits 1 on any failure.
import { chromium } from "playwright-core";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");
const [base, viewerKey, adminKey, facets] = process.argv.slice(2);
const origin = new URL(base).origin;
const PAGES = ["/console", "/console/data", "/console/traits", "/console/segments",
  "/console/survey", "/console/prediction"];

function fail(message) {
  throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const blocked = [];
const consoleErrors = [];

async function newContext(options = {}) {
  const context = await browser.newContext(options);
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("data:") || new URL(url).origin === origin) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  return context;
}

async function axe(page, path) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    await axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${path}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
}

async function signIn(page, key) {
  await page.goto(`${base}/console`);
  if (!page.url().endsWith("/console/sign-in")) fail(`not sent to sign in: ${page.url()}`);
  await page.getByLabel("API key").fill(key);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in" }).click()]);
  if (!page.url().endsWith("/console")) fail(`sign-in did not open the console: ${page.url()}`);
}

const summary = { pages: 0, personaCharts: 0, violations: [], blocked };
try {
  // GraphiQL and the API docs render from this origin alone.
  {
    const context = await newContext();
    const page = await context.newPage();
    page.on("pageerror", (e) => consoleErrors.push(`graphiql: ${e.message}`));
    await page.goto(`${base}/graphql`);
    await page.waitForSelector(".graphiql-container", { timeout: 30000 });
    await page.goto(`${base}/docs`);
    await page.waitForSelector(".swagger-ui .information-container, .swagger-ui .info", { timeout: 30000 });
    await page.goto(`${base}/`);
    for (const href of ["/graphql", "/docs", "/console"]) {
      if (!(await page.locator(`a[href="${href}"]`).count())) fail(`the start page lacks ${href}`);
    }
    await context.close();
  }

  // A viewer, at phone width: every page, charts, and no write controls.
  {
    // axe is injected as a script, which the pages' CSP would refuse: bypassed for the audit only.
    const context = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true, bypassCSP: true });
    const page = await context.newPage();
    page.on("pageerror", (e) => consoleErrors.push(`console: ${e.message}`));
    await page.goto(`${base}/`);
    summary.violations.push(...(await axe(page, "/")));
    await signIn(page, viewerKey);
    for (const path of PAGES) {
      const response = await page.goto(`${base}${path}`);
      if (response.status() !== 200) fail(`${path} answered ${response.status()}`);
      if (!(await page.getByRole("heading", { level: 1 }).count())) fail(`${path} has no heading`);
      const writes = await page.locator('form[method="post"]:not([action="/console/sign-out"])').count();
      if (writes) fail(`a viewer sees ${writes} write controls on ${path}`);
      summary.violations.push(...(await axe(page, path)));
      summary.pages++;
    }
    if (await page.locator('nav a[href="/console/keys"]').count()) fail("a viewer sees the keys page");
    const keys = await page.goto(`${base}/console/keys`);
    if (keys.status() !== 403) fail(`a viewer opened the keys page: ${keys.status()}`);

    await page.goto(`${base}/console/segments`);
    const charts = page.locator('svg[data-chart="persona"]');
    const n = await charts.count();
    if (n === 0) fail("no persona chart");
    for (let i = 0; i < n; i++) {
      const bars = await charts.nth(i).locator("rect.bar").count();
      if (bars !== Number(facets)) fail(`persona chart ${i} has ${bars} bars, not ${facets}`);
    }
    summary.personaCharts = n;
    await page.goto(`${base}/console/traits`);
    if (!(await page.locator('svg[data-chart="distribution"] rect.bar').count())) fail("no trait distribution chart");
    await context.close();
  }

  // An admin creates a key (its secret shown once) and revokes it; signing out ends the session.
  {
    const context = await newContext({ bypassCSP: true });
    const page = await context.newPage();
    await signIn(page, adminKey);
    await page.goto(`${base}/console/keys`);
    summary.violations.push(...(await axe(page, "/console/keys")));
    await page.getByRole("textbox", { name: "Name", exact: true }).fill("made in the console");
    await page.getByRole("combobox", { name: "Role", exact: true }).selectOption("viewer");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Create key" }).click()]);
    if (!(await page.locator("#new-secret").count())) {
      fail(`no secret after creating a key: ${(await page.content()).replace(/<[^>]+>/g, " ").slice(0, 600)}`);
    }
    const secret = (await page.locator("#new-secret").innerText()).trim();
    if (!secret.startsWith("tf_")) fail(`no secret shown: ${secret}`);
    const row = page.locator("tr", { hasText: "made in the console" });
    await Promise.all([page.waitForNavigation(), row.getByRole("button", { name: "Revoke" }).click()]);
    if (await page.locator("tr", { hasText: "made in the console" }).getByRole("button", { name: "Revoke" }).count()) {
      fail("the key was not revoked");
    }
    summary.revokedKeyWorks = (await fetch(`${base}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${secret}` },
      body: JSON.stringify({ query: "{ viewer { role } }" }),
    })).status;
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign out" }).click()]);
    await page.goto(`${base}/console`);
    if (!page.url().endsWith("/console/sign-in")) fail("the session outlived sign-out");
    await context.close();
  }
  if (consoleErrors.length) fail(`script errors: ${consoleErrors.join("; ")}`);
  console.log(JSON.stringify(summary));
} finally {
  await browser.close();
}
