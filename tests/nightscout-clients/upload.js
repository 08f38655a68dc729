// Uploads Nightscout entries with minimed-connect-to-nightscout's own upload function (the
// part of that bridge that posts to a Nightscout site), exactly as the bridge calls it.
// Usage: node upload.js <entries endpoint URL> <API secret> <entries JSON file>
// Prints {"status": <HTTP status>} on success, or {"error": <the bridge's message>}.
"use strict";

const fs = require("fs");
const nightscout = require("minimed-connect-to-nightscout/nightscout");

const [endpoint, secret, file] = process.argv.slice(2);
const entries = JSON.parse(fs.readFileSync(file, "utf8"));
nightscout.upload(entries, endpoint, secret, (err, response) => {
  if (err) {
    console.log(JSON.stringify({ error: err.message }));
  } else {
    console.log(JSON.stringify({ status: response.statusCode, body: response.body }));
  }
});
