"""A test push service (RFC 8030) for the Web Push end-to-end test, independent of Chronicle's
code: it plays the browser's side too, holding the subscription's P-256 key and auth secret.

Prints one JSON line at start: {"port", "p256dh", "auth"} (base64url), then one JSON line per
push received: the VAPID key (k=), the JWT's verified claims, the TTL and Urgency headers and
the payload decrypted with http_ece (RFC 8291, aes128gcm). A push whose VAPID signature does
not verify, whose audience is not this service or whose token has expired is answered 401 and
reported as {"error": ...}. A push to /gone/… is answered 410 (an expired subscription).
Runs until its standard input closes."""

import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


UA_KEY = ec.generate_private_key(ec.SECP256R1())
UA_PUBLIC = UA_KEY.public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
)
AUTH = os.urandom(16)
LOCK = threading.Lock()


def emit(record):
    with LOCK:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def verify_vapid(header, audience):
    """RFC 8292: `vapid t=<JWT>, k=<public key>`; the JWT is ES256-signed with k."""
    if not header.startswith("vapid "):
        raise ValueError("the Authorization scheme is not vapid")
    params = dict(
        part.strip().split("=", 1) for part in header[len("vapid "):].split(",")
    )
    token, key = params["t"], params["k"]
    signing_input, _, signature = token.rpartition(".")
    head = json.loads(b64url_decode(signing_input.split(".")[0]))
    if head.get("alg") != "ES256":
        raise ValueError(f"the JWT's alg is {head.get('alg')}, not ES256")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    raw = b64url_decode(signature)
    if len(raw) != 64:
        raise ValueError("the JWT signature is not 64 bytes (r || s)")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the VAPID signature does not verify")
    claims = json.loads(b64url_decode(signing_input.split(".")[1]))
    if claims.get("aud") != audience:
        raise ValueError(f"the JWT's aud is {claims.get('aud')!r}, not {audience!r}")
    now = time.time()
    if not (now < claims.get("exp", 0) <= now + 24 * 3600 + 60):
        raise ValueError("the JWT's exp is not within 24 hours from now (RFC 8292 §2)")
    return key, claims


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/gone/"):
            # An expired subscription (RFC 8030 §7.3).
            emit({"path": self.path, "gone": True})
            self.send_response(410)
            self.end_headers()
            return
        # The origin the push was sent to, with its port (RFC 8292 §2: aud is the origin).
        audience = f"http://{self.headers['Host']}"
        try:
            if self.headers.get("Content-Encoding") != "aes128gcm":
                raise ValueError("Content-Encoding is not aes128gcm")
            key, claims = verify_vapid(self.headers.get("Authorization", ""), audience)
            plain = http_ece.decrypt(body, private_key=UA_KEY, auth_secret=AUTH, version="aes128gcm")
        except Exception as error:  # reported to the test, which fails on it
            emit({"error": str(error), "path": self.path})
            self.send_response(401)
            self.end_headers()
            return
        emit({
            "path": self.path,
            "vapid_key": key,
            "claims": claims,
            "ttl": self.headers.get("TTL"),
            "urgency": self.headers.get("Urgency"),
            "payload": json.loads(plain),
        })
        self.send_response(201)
        self.send_header("Location", f"{self.path}/message")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    emit({"port": server.server_address[1], "p256dh": b64url(UA_PUBLIC), "auth": b64url(AUTH)})
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
