// Verify a postcall webhook with the Standard Webhooks library (npm install standardwebhooks).
//
// Call verify() in your endpoint before trusting the payload, with the raw request body exactly
// as received (a string or Buffer, not re-serialised JSON) and the request headers. For a GET
// webhook the signed content is the query string as received: the part of the URL after '?'.
//
// As a script it checks a saved request (tests/it/docs.rs runs it against a webhook postcall
// signed):
//     WEBHOOK_SECRET=whsec_... node verify_webhook.js BODY_FILE HEADERS_JSON_FILE

const fs = require("fs");
const { Webhook } = require("standardwebhooks");

// True when `webhook-signature` is a valid signature of this body by `secret` and
// `webhook-timestamp` is within five minutes of now.
function verify(secret, body, headers) {
  try {
    // jsonParse: false: form data and GET queries are signed too, and are not JSON.
    new Webhook(secret).verify(body, headers, { jsonParse: false });
    return true;
  } catch (e) {
    return false;
  }
}

module.exports = { verify };

if (require.main === module) {
  const body = fs.readFileSync(process.argv[2]);
  const headers = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
  const ok = verify(process.env.WEBHOOK_SECRET, body, headers);
  console.log(ok ? "valid" : "INVALID");
  process.exit(ok ? 0 : 1);
}
