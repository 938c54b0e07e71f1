#!/usr/bin/env python3
"""A real SMTP server for latchkey's tests: aiosmtpd on 127.0.0.1:PORT,
writing each accepted message into FOLDER as `NNNNNN.json` (envelope,
headers, decoded text and HTML parts) next to `NNNNNN.eml` (the raw bytes).

Refusals on demand, for the retry tests: while FOLDER/tempfail exists, DATA
is answered `451 4.3.0` (a temporary refusal); while FOLDER/permfail exists,
`550 5.7.1` (a permanent one). A marker holding a number N refuses N times,
then removes itself. Every DATA attempt, accepted or not, appends a line to
FOLDER/attempts.log.

A slow server on demand, for the lease tests: while FOLDER/stall exists,
each DATA is answered only after the number of seconds it holds (a
fraction allowed). Other connections are served meanwhile.

    capture.py PORT FOLDER
"""

import asyncio
import json
import os
import signal
import sys
import threading
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller

lock = threading.Lock()


def refusal(folder, name, answer):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            text = f.read().strip()
        if text:
            left = int(text) - 1
            if left <= 0:
                os.remove(path)
            else:
                with open(path, "w") as f:
                    f.write(str(left))
    except (OSError, ValueError):
        pass
    return answer


def stall_seconds(folder):
    try:
        with open(os.path.join(folder, "stall")) as f:
            return max(0.0, float(f.read().strip() or 0))
    except (OSError, ValueError):
        return 0.0


class Capture:
    def __init__(self, folder):
        self.folder = folder
        # a restarted server goes on numbering after the messages kept
        self.count = len([n for n in os.listdir(folder) if n.endswith(".json")])

    async def handle_DATA(self, server, session, envelope):
        stall = stall_seconds(self.folder)
        if stall:
            await asyncio.sleep(stall)
        with lock:
            answer = refusal(self.folder, "permfail", "550 5.7.1 Refused for good (permfail marker)") or refusal(
                self.folder, "tempfail", "451 4.3.0 Try again later (tempfail marker)"
            )
            with open(os.path.join(self.folder, "attempts.log"), "a") as f:
                f.write(f"{','.join(envelope.rcpt_tos)} {answer or '250'}\n")
            if answer:
                return answer
            self.count += 1
            name = f"{self.count:06d}"
            message = BytesParser(policy=policy.default).parsebytes(envelope.content)
            text = message.get_body(preferencelist=("plain",))
            html = message.get_body(preferencelist=("html",))
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "from": str(message["From"]),
                "to": str(message["To"]),
                "subject": str(message["Subject"]),
                "content_type": message.get_content_type(),
                "text": text.get_content() if text is not None else None,
                "html": html.get_content() if html is not None else None,
            }
            with open(os.path.join(self.folder, name + ".eml"), "wb") as f:
                f.write(envelope.content)
            tmp = os.path.join(self.folder, name + ".json.tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.replace(tmp, os.path.join(self.folder, name + ".json"))
        return "250 Message accepted for delivery"


def main():
    port = int(sys.argv[1])
    folder = sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    controller = Controller(Capture(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    controller.stop()


if __name__ == "__main__":
    main()
