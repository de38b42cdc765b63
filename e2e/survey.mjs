// Answers the hosted survey in headless Chromium the way a player would, on a
// phone-sized screen with JavaScript disabled, finding every control by its
// accessible role and name (fieldset legend, radio label, button).
//
// usage: node survey.mjs <survey link> <attentive|straight> [max pages]
// With max pages, the player leaves after that many pages (to come back later).
// env:   CHROMIUM (default /usr/bin/chromium)
// Prints {"pages", "answered", "finished"}; exits 1 on any failure.
import { chromium } from "playwright-core";

const [link, mode, maxPages] = process.argv.slice(2);
const limit = maxPages ? Number(maxPages) : Infinity;
const LABELS = ["Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"];

function choose(statement, index) {
  // Attention checks say which answer they want; a reading player follows them.
  const asked = statement.match(/choose "([^"]+)"/);
  if (asked) return asked[1];
  if (mode === "straight") return LABELS[2];
  return LABELS[(index * 7 + 3) % 5];
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({
    javaScriptEnabled: false,
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  const first = await page.goto(link);
  if (first.status() !== 200) throw new Error(`survey link answered ${first.status()}`);
  let pages = 0;
  let asked = 0;
  let finished = false;
  while (pages < limit) {
    if (await page.getByRole("heading", { name: "Thank you!" }).count()) {
      finished = true;
      break;
    }
    const groups = page.getByRole("group");
    const n = await groups.count();
    if (n === 0) throw new Error("a survey page without questions: " + (await page.content()).slice(0, 500));
    for (let i = 0; i < n; i++) {
      const group = groups.nth(i);
      const legend = await group.locator("legend").innerText();
      await group.getByRole("radio", { name: choose(legend, asked++), exact: true }).check();
    }
    pages++;
    await Promise.all([
      page.waitForNavigation(),
      page.getByRole("button", { name: /Save and continue|Finish/ }).click(),
    ]);
    if (pages > 100) throw new Error("the survey does not end");
  }
  finished ||= (await page.getByRole("heading", { name: "Thank you!" }).count()) > 0;
  console.log(JSON.stringify({ pages, answered: asked, finished }));
} catch (e) {
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
