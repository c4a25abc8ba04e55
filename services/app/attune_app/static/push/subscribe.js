/* Web push for this phone: asks permission, subscribes with the notifier's VAPID public key and hands the
 * subscription to the app, which passes it to the notifier with the member's credential. No libraries.
 *
 * Markup (any element; a button is best: iPhones ask for permission only after a tap):
 *   <button type="button" data-webpush
 *           data-vapid-key="BASE64URL public key (GET /v1/webpush/vapid-public-key on the notifier)"
 *           data-subscribe-url="/settings/push"          where the subscription JSON is POSTed
 *           data-worker-url="/static/push/sw.js"         the service worker (default shown)
 *           data-csrf-token="..."                        sent as the X-CSRF-Token header, if given
 *           data-status="push-status">Send reminders to this phone</button>
 *   <p id="push-status" role="status" aria-live="polite"></p>
 * The POST body is PushSubscription.toJSON(): {"endpoint", "expirationTime", "keys": {"p256dh", "auth"}}.
 * The element gets data-webpush-state = unsupported | denied | subscribed | failed.
 */
"use strict";
(function () {
  var WORDS = {
    unsupported: "This browser cannot receive reminders. On an iPhone, add Attune to your Home Screen first, then try again here.",
    denied: "Notifications are turned off for Attune. You can turn them on in your browser's settings whenever you like.",
    working: "Setting up reminders on this phone…",
    subscribed: "This phone will now receive your reminders.",
    failed: "We could not set up reminders just now. Please try again in a moment."
  };

  function keyBytes(base64url) {
    var padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function say(element, state) {
    element.setAttribute("data-webpush-state", state);
    var target = element.getAttribute("data-status") && document.getElementById(element.getAttribute("data-status"));
    if (target) target.textContent = WORDS[state];
  }

  function subscribe(element) {
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      say(element, "unsupported");
      return Promise.resolve();
    }
    say(element, "working");
    var workerUrl = element.getAttribute("data-worker-url") || "/static/push/sw.js";
    return Notification.requestPermission()
      .then(function (permission) {
        if (permission !== "granted") throw { state: "denied" };
        return navigator.serviceWorker.register(workerUrl);
      })
      .then(function (registration) {
        return registration.pushManager.getSubscription().then(function (existing) {
          return existing || registration.pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: keyBytes(element.getAttribute("data-vapid-key"))
          });
        });
      })
      .then(function (subscription) {
        var headers = { "Content-Type": "application/json" };
        var csrf = element.getAttribute("data-csrf-token");
        if (csrf) headers["X-CSRF-Token"] = csrf;
        return fetch(element.getAttribute("data-subscribe-url"), {
          method: "POST", credentials: "same-origin", headers: headers, body: JSON.stringify(subscription.toJSON())
        });
      })
      .then(function (answer) {
        if (!answer.ok) throw { state: "failed" };
        say(element, "subscribed");
      })
      .catch(function (problem) {
        say(element, problem && problem.state === "denied" ? "denied" : "failed");
      });
  }

  function wire() {
    var elements = document.querySelectorAll("[data-webpush]");
    for (var i = 0; i < elements.length; i++) {
      elements[i].addEventListener("click", function (event) {
        event.preventDefault();
        subscribe(event.currentTarget);
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
