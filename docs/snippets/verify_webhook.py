"""Verify a postcall webhook with the Standard Webhooks library (pip install standardwebhooks).

Call verify() in your endpoint before trusting the payload, with the raw request body exactly
as received (bytes, not re-serialised JSON) and the request headers. For a GET webhook the
signed content is the query string as received: the part of the URL after '?'.

As a script it checks a saved request (tests/it/docs.rs runs it against a webhook postcall
signed):
    WEBHOOK_SECRET=whsec_... python3 verify_webhook.py BODY_FILE HEADERS_JSON_FILE
"""

import json
import os
import sys

from standardwebhooks import Webhook, WebhookVerificationError


def verify(secret: str, body: bytes, headers: dict) -> bool:
    """True when `webhook-signature` is a valid signature of this body by `secret` and
    `webhook-timestamp` is within five minutes of now."""
    try:
        # json_parse=False: form data and GET queries are signed too, and are not JSON.
        Webhook(secret).verify(body, headers, json_parse=False)
        return True
    except WebhookVerificationError:
        return False


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        body = f.read()
    with open(sys.argv[2]) as f:
        headers = json.load(f)
    ok = verify(os.environ["WEBHOOK_SECRET"], body, headers)
    print("valid" if ok else "INVALID")
    sys.exit(0 if ok else 1)
