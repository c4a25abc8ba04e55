/* Attune's service worker: shows a web push and opens its link when tapped. No libraries, no caching.
 *
 * The notifier sends JSON: {"title": "...", "body": "...", "url": "https://..." | null}. In discreet mode the
 * title and body are already neutral (nothing intimate on a lock screen); the worker shows only what it got.
 */
"use strict";

function readPush(data) {
  if (!data) return {};
  try {
    var parsed = data.json();
    return parsed && typeof parsed === "object" ? parsed : {};
  } catch (notJson) {
    return { body: data.text() };
  }
}

function safeLink(url) {
  try {
    var parsed = new URL(url, self.location.origin);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch (notAUrl) {
    return null;
  }
}

self.addEventListener("push", function (event) {
  var message = readPush(event.data);
  var title = typeof message.title === "string" && message.title ? message.title : "Attune";
  var options = {
    body: typeof message.body === "string" ? message.body : "",
    data: { url: typeof message.url === "string" ? safeLink(message.url) : null },
    tag: "attune",
    renotify: true
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = event.notification.data && event.notification.data.url;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      if (url) return self.clients.openWindow(url);
      for (var i = 0; i < windows.length; i++) {
        if ("focus" in windows[i]) return windows[i].focus();
      }
      return self.clients.openWindow("/");
    })
  );
});
