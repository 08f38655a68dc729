"""A real SMTP server (aiosmtpd) for the e-mail end-to-end test. Prints one JSON line at
start, {"port"}, then one per message received: the envelope's sender and recipients, and
the message's From, To, Subject and plain-text body as Python's email parser reads them.
Runs until its standard input closes."""

import email
import email.policy
import json
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        sys.stdout.write(json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "body": body.get_content() if body is not None else None,
        }) + "\n")
        sys.stdout.flush()
        return "250 Message accepted for delivery"


def main():
    # aiosmtpd checks its listener by connecting to the port it was given, so it needs a
    # real one: a free port the system picks.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
