#!/usr/bin/env python3
"""A real SMTP server on loopback for the tests (aiosmtpd).

Every accepted message is kept as one JSON file in DIR: the envelope (mail_from, rcpt_tos),
the decoded headers (subject, message_id, from, to), the content type, the decoded text and
HTML parts and the raw message. Recipients at @refused.example are refused with 550, for the
tests of permanent failures.

    python3 scripts/smtp_sink.py --port 2525 --dir /tmp/sink

With --tls-cert and --tls-key (PEM) it offers STARTTLS with that certificate and refuses mail
sent before it (the test of `mail.smtp_ca_file`).
"""
import argparse
import email
import email.policy
import json
import os
import signal
import ssl
import threading
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().endswith("@refused.example"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and kind not in parts:
                parts[kind] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"] or ""),
            "message_id": str(message["message-id"] or ""),
            "from": str(message["from"] or ""),
            "to": str(message["to"] or ""),
            "content_type": message.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "raw": envelope.content.decode("utf-8", "replace"),
        }
        name = uuid.uuid4().hex
        temporary = os.path.join(self.out, "." + name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(temporary, os.path.join(self.out, name + ".json"))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    tls = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        tls = {"tls_context": context, "require_starttls": True}
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port, **tls)
    controller.start()
    print(f"smtp sink listening on 127.0.0.1:{args.port}, keeping messages in {args.dir}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
