// Runs the PWA's service worker (argv[2]) in a bare VM context with a recording fake of the worker's globals,
// sends it one push (argv[3]: the decrypted payload text) and then a tap on the notification it showed,
// and prints what it did as JSON: the notifications shown and the windows opened.
"use strict";
const fs = require("fs");
const vm = require("vm");

const [, , workerPath, payload] = process.argv;
const listeners = {};
const shown = [];
const opened = [];
const context = {
  URL,
  self: {
    location: { origin: "https://app.example.org" },
    addEventListener: (type, fn) => { listeners[type] = fn; },
    registration: { showNotification: async (title, options) => { shown.push({ title, options }); } },
    clients: { matchAll: async () => [], openWindow: async (url) => { opened.push(url); } },
  },
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(workerPath, "utf8"), context);

async function dispatch(type, event) {
  const waits = [];
  listeners[type]({ ...event, waitUntil: (p) => waits.push(p) });
  await Promise.all(waits);
}

(async () => {
  await dispatch("push", { data: { json: () => JSON.parse(payload), text: () => payload } });
  const notification = { data: shown[0].options.data, close: () => {} };
  await dispatch("notificationclick", { notification });
  console.log(JSON.stringify({ shown, opened }));
})().catch((e) => { console.error(e); process.exit(1); });
