// End-to-end test of the web page in headless Chromium: start `saener serve`, load the
// page, annotate the bundled example, check the highlighted spans, the evidence panel and
// a feature's page, and save a screenshot. Every failure exits non-zero.
//
//   SAENER_BIN=target/debug/saener node e2e/page.test.mjs   (from the repository root)
//
// Environment: SAENER_BIN (default target/debug/saener), CHROMIUM (default
// /usr/bin/chromium), E2E_ARTIFACTS (default target/e2e; the screenshot goes there).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.SAENER_BIN ?? "target/debug/saener";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? "target/e2e";
const TYPES = new Set(["LOC", "MISC", "ORG", "PER"]);

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// Starts the server on a free port and resolves with its base URL once it listens.
function startServer() {
  const server = spawn(BIN, ["serve", "--port", "0", "--profile", "conll2003"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("saener serve did not start in 300 s")), 300_000);
    let out = "";
    server.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.on("exit", (code) => reject(new Error(`saener serve exited with ${code} before listening`)));
  });
  return { server, url };
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const { server, url } = startServer();
  const profileDir = mkdtempSync(join(tmpdir(), "saener-chromium-"));
  let context;
  try {
    const base = await url;
    console.log(`e2e: server at ${base}`);
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1366, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
    // The page must work offline: nothing but the server itself may be asked for.
    page.on("request", (r) => !r.url().startsWith(base) && problems.push(`outside request: ${r.url()}`));

    await page.goto(base);
    await page.waitForSelector("#profile option[value=conll2003]", { state: "attached" });
    await page.click("#example");
    await page.click("#annotate");
    await page.waitForSelector("mark.entity", { timeout: 120_000 });

    const spans = await page.$$eval("mark.entity", (marks) =>
      marks.map((m) => ({ text: m.textContent, label: m.dataset.label }))
    );
    console.log(`e2e: ${spans.length} spans: ${spans.map((s) => `${s.text}/${s.label}`).join(", ")}`);
    check(spans.length >= 4, `at least 4 highlighted spans, found ${spans.length}`);
    check(spans.every((s) => TYPES.has(s.label)), "every span has a CoNLL-2003 type");
    for (const [text, label] of [["Nairobi", "LOC"], ["Frankfurt", "LOC"]]) {
      check(spans.some((s) => s.text === text && s.label === label), `${text} highlighted as ${label}`);
    }
    check((await page.textContent("#status")).includes(`${spans.length} entities`), "status line counts the entities");

    // Keyboard: focus the first span and press Enter to pin its evidence.
    const first = page.locator("mark.entity").first();
    await first.focus();
    await page.keyboard.press("Enter");
    check((await first.getAttribute("aria-pressed")) === "true", "Enter pins the focused span");
    const evidence = page.locator("#evidence");
    await evidence.locator("table tbody tr").first().waitFor();
    check((await evidence.textContent()).includes(spans[0].text), "the evidence panel names the span");
    const rows = await evidence.locator("table tbody tr").count();
    check(rows >= 1, "the evidence panel lists the voting features");
    // The shipped profiles decode with naive Bayes: each feature's log-odds is shown.
    check((await evidence.locator("thead").textContent()).includes("log-odds"), "the evidence table shows log-odds");
    const cells = await evidence.locator("table tbody tr").first().locator("td").count();
    check(cells === 4, `an evidence row has feature, activation, log-odds and precision (${cells} cells)`);

    // Hover another span: a pinned span keeps the panel; unpin and hover.
    await page.keyboard.press("Escape");
    const frankfurt = page.locator("mark.entity", { hasText: "Frankfurt" }).first();
    await frankfurt.hover();
    await page.waitForFunction(() => document.querySelector("#evidence").textContent.includes("Frankfurt"));

    // A feature's page: precision per type and top calibration contexts.
    const link = evidence.locator("button.feature-link").first();
    const featureName = (await link.textContent()).trim();
    await link.click();
    const feature = page.locator("#feature");
    await feature.locator("table tbody tr").first().waitFor();
    check((await feature.locator("h2").textContent()).includes(featureName), `the feature panel shows ${featureName}`);
    // The artifact, taken before the last checks so that a failure has one too.
    const screenshot = join(ARTIFACTS, "page.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`e2e: screenshot ${screenshot}`);
    const contexts = await feature.locator("ol.contexts li").count();
    check(contexts >= 1, `the feature panel lists top contexts (found ${contexts})`);
    check(problems.length === 0, problems.join("; "));
    console.log("e2e: ok");
  } finally {
    if (context) await context.close();
    rmSync(profileDir, { recursive: true, force: true });
    const exited =
      server.exitCode !== null
        ? Promise.resolve({ code: server.exitCode, signal: server.signalCode })
        : new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));
    server.kill("SIGTERM");
    const { code, signal } = await exited;
    check(code === 0, `saener serve stops cleanly on SIGTERM (exit ${code}, signal ${signal})`);
  }
}

main().catch((e) => {
  console.error(`e2e: FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
