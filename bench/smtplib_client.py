"""The smtplib client of the bench (Python's reference implementation, lockstep, no PIPELINING).

    python3 bench/smtplib_client.py '{"workload": "w1", "host": ..., "port": ..., "count": ..., ...}'

Prints one JSON line like the Node clients. W3 needs the whole body in memory: smtplib has no
streaming send, so its peak RSS is the point of that row.
"""
import json
import smtplib
import sys
import time

FROM = "bench-sender@bench.test"


def recipients(n):
    return ["rcpt%d@discard.test" % i for i in range(n)]


def message_1k():
    head = ("From: <%s>\r\nTo: <rcpt0@discard.test>\r\nSubject: rx-smtp bench\r\n"
            "Message-ID: <bench@bench.test>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n" % FROM)
    line = "The quick brown fox jumps over the lazy dog, then does it again for the benchmark.\r\n"
    text = head
    while len(text) + len(line) <= 1024:
        text += line
    text += "x" * (1024 - len(text) - 2) + "\r\n"
    return text.encode("latin-1")


def canonical_text(total):
    """The same bytes as common.ts canonicalText, built whole (smtplib needs them in memory)."""
    pattern = "".join("%s line %d of the generated body\r\n" % ("abcdefghij" * (1 + i % 7), i)
                      for i in range(64)).encode("latin-1")
    reps = total // len(pattern) + 1
    return (pattern * reps)[:total]


def many(args):
    body, to = message_1k(), recipients(args["rcpts"])
    sent = failed = 0
    truncated = False
    t0 = time.perf_counter()
    deadline = t0 + args["maxSeconds"]
    with smtplib.SMTP(args["host"], args["port"], local_hostname="bench.test") as smtp:
        for _ in range(args["count"]):
            if time.perf_counter() >= deadline:
                truncated = True
                break
            try:
                smtp.sendmail(FROM, to, body)
                sent += 1
            except smtplib.SMTPException:
                failed += 1
    return {"messages": sent, "failed": failed, "bytes": 0,
            "seconds": time.perf_counter() - t0, "truncated": truncated}


def big_body(args):
    body = canonical_text(args["count"])
    t0 = time.perf_counter()
    with smtplib.SMTP(args["host"], args["port"], local_hostname="bench.test") as smtp:
        smtp.sendmail(FROM, recipients(1), body)
    return {"messages": 1, "failed": 0, "bytes": args["count"],
            "seconds": time.perf_counter() - t0, "truncated": False,
            "note": "body built in memory before timing (smtplib cannot stream)"}


def main():
    args = json.loads(sys.argv[1])
    run = {"w1": many, "w2": many, "w5": many, "w3": big_body}[args["workload"]]
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
