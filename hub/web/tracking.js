/* Lead Hub attribution: keeps the visitor's first and last touch (utm_*, gclid, yclid, referrer,
   landing page, time) in this site's localStorage and fills them into hidden fields of every form.
   No requests of its own. Attributes on its <script> tag:
     data-days="90"       how long a touch is kept
     data-consent="wait"  do nothing until window.leadHubTracking.start() is called
     data-now="<ms>"      the time to use instead of the browser's (tests only) */
(function () {
  "use strict";
  var script = document.currentScript || {};
  var data = script.dataset || {};
  var KEY = "leadhub_touches";
  var DAY = 864e5, VISIT_GAP = 30 * 6e4;
  var TAGS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "yclid"];
  var FIELDS = TAGS.concat(["referrer", "landing_page"]);
  var keepFor = (parseFloat(data.days) || 90) * DAY;
  var started = false;

  function now() { return data.now ? Number(data.now) : Date.now(); }

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }

  function save(state) {
    try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* storage refused */ }
  }

  function externalReferrer() {
    if (!document.referrer) return "";
    try { return new URL(document.referrer).host === location.host ? "" : document.referrer; }
    catch (e) { return ""; }
  }

  function currentTouch(at) {
    var query = new URLSearchParams(location.search), touch = {at: at, tagged: false};
    TAGS.forEach(function (tag) {
      touch[tag] = query.get(tag) || "";
      if (touch[tag]) touch.tagged = true;
    });
    touch.referrer = externalReferrer();
    touch.landing_page = location.href;
    return touch;
  }

  function expired(touch, at) { return !touch || at - touch.at > keepFor; }

  /* A tagged page or an outside referrer is always a new touch; so is any page after a break
     of 30 minutes (a new visit, direct when nothing says otherwise). */
  function record() {
    var at = now(), state = load(), touch = currentTouch(at);
    var newVisit = !state.seen || at - state.seen > VISIT_GAP;
    if (touch.tagged || touch.referrer || newVisit || expired(state.last, at)) state.last = touch;
    if (expired(state.first, at)) state.first = state.last;
    state.seen = at;
    save(state);
    return state;
  }

  function setField(form, name, value) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.setAttribute("data-leadhub", "");
      form.appendChild(input);
    }
    if (!input.value || input.hasAttribute("data-leadhub")) input.value = value || "";
  }

  function fill(form, state) {
    FIELDS.forEach(function (name) {
      setField(form, name, state.first[name]);
      setField(form, "last_" + name, state.last[name]);
    });
    setField(form, "first_touch_at", new Date(state.first.at).toISOString());
    setField(form, "last_touch_at", new Date(state.last.at).toISOString());
  }

  function fillAll(state) {
    Array.prototype.forEach.call(document.forms, function (form) { fill(form, state); });
  }

  function start() {
    if (started) return;
    started = true;
    var state = record();
    var run = function () { fillAll(state); };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
    // forms drawn later (site builders' pop-ups) and any form at the moment it is sent
    document.addEventListener("submit", function (event) { fill(event.target, state); }, true);
    if (window.MutationObserver) new MutationObserver(run).observe(document.documentElement, {childList: true, subtree: true});
  }

  window.leadHubTracking = {start: start};
  if (data.consent !== "wait") start();
})();
