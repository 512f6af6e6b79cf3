"""Verifies one webhook with the Standard Webhooks reference library for Python.

Usage: standardwebhooks_verify.py < request.json
where request.json is {"secret": "whsec_…", "headers": {name: value}, "body": "<raw body>"}.
Prints "verified" and exits 0, or prints the library's refusal and exits 1.
Needs `pip install standardwebhooks` (scripts/services.sh).
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    request = json.load(sys.stdin)
    try:
        Webhook(request["secret"]).verify(request["body"], request["headers"])
    except WebhookVerificationError as e:
        print(f"refused: {e}")
        sys.exit(1)
    print("verified")


main()
