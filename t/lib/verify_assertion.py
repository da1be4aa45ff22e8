#!/usr/bin/env python3
"""Verifies an identity assertion the way a business service would, with PyJWT.

    verify_assertion.py JWKS_URL AUDIENCE TOKEN [ISSUER]

PyJWKClient fetches the gateway's JWKS (an http:// URL), picks the key by the token's kid,
and PyJWT checks the ES256 signature, aud, iss (default ngx-identity), exp and that iat and
sub are there. On success prints {"kid": the token's kid, "claims": {...}} as one line of
JSON (sorted keys) and exits 0; otherwise prints "REJECTED <PyJWT's exception class>" and
exits 1 (2 for a usage error).
Needs PyJWT 2 with cryptography (scripts/deps.sh installs Debian's python3-jwt).
"""

import json
import sys

import jwt


def verify(jwks_url, audience, token, issuer="ngx-identity"):
    # Keys are fetched for each call: a test may rotate them between two calls.
    signing_key = jwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["ES256"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    return {"kid": jwt.get_unverified_header(token)["kid"], "claims": claims}


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        result = verify(*argv[1:])
    except jwt.PyJWTError as e:
        print("REJECTED", type(e).__name__)
        return 1
    print(json.dumps(result, sort_keys=True, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
