// status_page.mjs URL SHOT - the status page in a real headless browser
// (Debian's chromium, driven by playwright-core). Loads URL, waits until
// the page shows every member of the cluster with a leader and says it is
// healthy, takes SHOT-healthy.png, prints READY and waits for a line on
// stdin (the driver stopping a member), then waits until the page shows
// that member down, without a reload, and takes SHOT-down.png. Prints
// what it saw; exit 0 only if both happened.
import { chromium } from "playwright-core";
import readline from "node:readline";

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
let code = 1;
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => {
    if (!r.url().startsWith(url)) errors.push("external request: " + r.url());
  });
  await page.goto(url);
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll("#members tbody tr");
    return rows.length === 3 && document.querySelector("tr.leader") &&
      document.getElementById("verdict").className === "ok";
  }, null, { timeout: 20000 });
  const rows = await page.$$eval("#members tbody tr", (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  console.log("members: " + JSON.stringify(rows));
  console.log("verdict: " + await page.textContent("#verdict"));
  await page.screenshot({ path: shot + "-healthy.png", fullPage: true });
  console.log("READY");
  const rl = readline.createInterface({ input: process.stdin });
  const stopped = await new Promise((res) => rl.once("line", res));
  rl.close();
  await page.waitForFunction((id) => {
    return [...document.querySelectorAll("#members tbody tr.down")]
      .some((tr) => tr.children[0].textContent === id);
  }, stopped.trim(), { timeout: 20000 });
  console.log("down: " + await page.textContent("tr.down"));
  console.log("verdict: " + await page.textContent("#verdict"));
  await page.screenshot({ path: shot + "-down.png", fullPage: true });
  if (errors.length) console.log("page errors: " + errors.join("; "));
  else code = 0;
} catch (e) {
  console.log("FAIL: " + e);
} finally {
  await browser.close();
}
process.exit(code);
