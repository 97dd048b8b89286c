// The page holds no data: it reads the funnel API with the viewer's key, given once in the
// address (#key=...; a fragment never reaches a server or its logs) or pasted in the form,
// and kept for this tab only. Everything from the API is put in the page as text.
const journey = decodeURIComponent(location.pathname.split("/")[2]);
const version = new URLSearchParams(location.search).get("version");
const api = `/v1/journeys/${encodeURIComponent(journey)}/funnel` + (version ? `?version=${encodeURIComponent(version)}` : "");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict", flowchart: { htmlLabels: true } });
const given = new URLSearchParams(location.hash.slice(1)).get("key");
if (given) {
  sessionStorage.setItem("journeys-key", given);
  history.replaceState(null, "", location.pathname + location.search);
}
let drawn = "";
let renders = 0;

function text(id, value) { document.getElementById(id).textContent = value; }

function el(tag, content, attrs = {}) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const part of [].concat(content)) node.append(part);
  return node;
}

function askForKey() {
  const form = document.getElementById("key-form");
  form.hidden = false;
  form.onsubmit = (e) => {
    e.preventDefault();
    sessionStorage.setItem("journeys-key", form.elements.key.value.trim());
    form.hidden = true;
    refresh();
  };
}

async function refresh() {
  const key = sessionStorage.getItem("journeys-key");
  if (!key) { askForKey(); return; }
  try {
    const response = await fetch(api, { headers: { Authorization: `Bearer ${key}` } });
    const funnel = await response.json();
    if (response.status === 401 || response.status === 403) askForKey();
    if (!response.ok) throw new Error(funnel.detail || funnel.title || response.statusText);
    text("title", `${funnel.name} (${funnel.journey_id}) v${funnel.version}`);
    const pct = funnel.conversion === null ? "-" : `${(funnel.conversion * 100).toFixed(1)}%`;
    document.getElementById("totals").replaceChildren(
      ...["entered", "active", "paused", "completed", "converted", "exited", "stopped"].map(
        k => el("span", [`${k} `, el("b", String(funnel[k]))], { "data-count": k })),
      el("span", ["conversion ", el("b", pct)]));
    if (funnel.mermaid !== drawn) {
      // Strict security level: Mermaid sanitizes its own labels (only <b> and <br/> here).
      const { svg } = await mermaid.render(`funnel${++renders}`, funnel.mermaid);
      document.getElementById("diagram").innerHTML = svg;
      drawn = funnel.mermaid;
    }
    // Each count links to its enrollments in the Temporal UI (the API builds the links).
    const link = (href, label) => href && /^https?:\/\//.test(href)
      ? el("a", label, { href, target: "_blank", rel: "noopener noreferrer" }) : label;
    const goal = funnel.goal ? [`converted (${funnel.goal})`] : [];
    // A send step's messages: sent, then what became of them (people's opens and clicks,
    // a machine's apart), with rates over the messages sent.
    const share = (r) => r === null || r === undefined ? "" : ` (${(r * 100).toFixed(1)}%)`;
    const reacted = (s) => {
      const r = s.reactions;
      if (!r) return s.sent ? `${s.sent} sent` : "";
      return `${s.sent} sent${s.queued ? `, ${s.queued} queued` : ""}; opened ${r.opened}${share(r.open_rate)} (+${r.opened_machine} machine), ` +
        `clicked ${r.clicked}${share(r.click_rate)}, bounced ${r.bounced}${share(r.bounce_rate)}, ` +
        `complained ${r.complained}${share(r.complaint_rate)}, delivered ${r.delivered}, replied ${r.replied}`;
    };
    const stepHead = el("tr", ["step", "reached", "here now", ...goal, "messages"].map(h => el("th", h)));
    const stepRows = funnel.steps.map(s => el("tr", [
      el("td", s.id),
      el("td", link(s.ui_reached, String(s.reached))),
      el("td", link(s.ui_here, String(s.here))),
      ...(funnel.goal ? [el("td", String(s.converted))] : []),
      el("td", reacted(s))], { "data-step": s.id }));
    document.getElementById("steps").replaceChildren(stepHead, ...stepRows);
    // Each experiment: per arm its rate, the difference from the control with its 95%
    // interval, the always-valid p-value and the chance to be best; the verdict in words
    // and, when the arms did not get their promised shares, the warning first.
    const pctOf = (x) => x === null || x === undefined ? "-" : `${(x * 100).toFixed(1)}%`;
    const pts = (x) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}`;
    const sections = funnel.experiments.map(x => {
      const metric = x.metric === "goal" ? "" : `, on ${x.metric}`;
      const title = `${x.id} (${x.kind}${metric})` + (x.decision ? `, ${x.decision}` : "");
      const head = el("tr", ["arm", "exposures", "conversions", "rate", "difference (95%)",
        "lift", "always-valid p", "P(best)"].map(h => el("th", h)));
      const rows = x.arms.map(a => el("tr", [
        el("td", a.name), el("td", String(a.exposures)), el("td", String(a.conversions)),
        el("td", pctOf(a.rate)),
        el("td", a.control ? "control" : a.difference === null ? "-"
          : `${pts(a.difference)} pts (${pts(a.interval.low)} to ${pts(a.interval.high)})`),
        el("td", pctOf(a.lift)),
        el("td", a.always_valid_p === null ? "-" : a.always_valid_p.toPrecision(3)),
        el("td", pctOf(a.probability_best))], { "data-arm": a.name }));
      const warning = x.sample_ratio_mismatch
        ? [el("p", `Sample-ratio mismatch (p = ${x.sample_ratio_p.toPrecision(2)})`, { class: "srm" })] : [];
      return el("section", [el("h2", title), ...warning, el("table", [head, ...rows]),
        el("p", x.words, { class: "verdict" })], { "data-experiment": x.id });
    });
    document.getElementById("experiments").replaceChildren(...sections);
    // The send queues: what waits for a provider's ceiling or the journey's pace.
    const secs = (x) => x < 60 ? `${x.toFixed(0)} s` : `${(x / 60).toFixed(1)} min`;
    const queued = funnel.queues.filter(q => q.waiting || q.drain_seconds || q.bucket.startsWith("journey:"));
    const queueHead = el("tr", ["queue", "ceiling /s", "waiting", "oldest wait", "drains in",
      "sent last minute"].map(h => el("th", h)));
    const queueRows = queued.map(q => el("tr", [
      el("td", q.bucket), el("td", q.per_second === null ? "none" : `${q.per_second} (${q.limit_from})`),
      el("td", String(q.waiting)), el("td", secs(q.oldest_wait_seconds)),
      el("td", secs(q.drain_seconds)), el("td", String(q.sent_last_minute))], { "data-queue": q.bucket }));
    document.getElementById("queues").replaceChildren(
      ...(queued.length ? [el("h2", "Send queues"), el("table", [queueHead, ...queueRows])] : []));
    text("error", "");
    text("updated", `updated ${new Date().toLocaleTimeString()}`);
    document.body.dataset.ready = "true";
  } catch (err) {
    text("error", `could not load the funnel: ${err.message}`);
  }
}
// One request in flight at a time: the next refresh is asked for 5 s after this one ends,
// so a slow funnel (a long journey) is never asked for twice at once by one tab.
async function loop() {
  await refresh();
  setTimeout(loop, 5000);
}
loop();
