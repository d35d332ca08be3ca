#!/usr/bin/python3
"""Send every HL7 sample to handover-nursing with an independent client
(Debian's python3-hl7, MLLPClient on the files' exact bytes) and check each
answer against samples/README.md.

usage: hl7_samples.py PORT SHARED_DIR PHASE
  PHASE requests: valid/, broken/, pairs/ and mllp/ streams
  PHASE outcomes: outcomes/ (after the answered events were delivered)
  PHASE early-outcome: outcomes/ before the answered event was delivered
Exit status 0 when every answer is as expected; every mismatch is printed.
"""
import os
import socket
import sys

import hl7.client

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
SHARED = sys.argv[2]
PHASE = sys.argv[3]
HL7 = os.path.join(SHARED, "samples", "hl7")
failures = []


def read_ack(sock, first=b""):
    """Read until the end block 0x1C 0x0D, not trusting one recv()."""
    buf = first
    while b"\x1c\x0d" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def parse_ack(raw):
    """Return (msa, errs): MSA fields and the ERR segments' fields."""
    body = raw.strip(b"\x0b\x1c\x0d")
    segs = [s for s in body.split(b"\r") if s]
    msa, errs = None, []
    for s in segs:
        f = s.decode("utf-8", "replace").split("|")
        if f[0] == "MSA":
            msa = f
        elif f[0] == "ERR":
            errs.append(f)
    return msa, errs


def send_file(path):
    data = open(path, "rb").read()
    cl = hl7.client.MLLPClient(HOST, PORT)
    try:
        first = cl.send_message(data)
        if isinstance(first, str):
            first = first.encode("utf-8")
        return read_ack(cl.socket, first)
    finally:
        cl.close()


def check(name, raw, code, err=None, loc=None, msa2=None, text=None):
    msa, errs = parse_ack(raw)
    if msa is None:
        failures.append(f"{name}: no MSA in answer {raw!r}")
        return
    got = msa[1]
    detail = f"{got} {msa[3] if len(msa) > 3 else ''}"
    ok = got == code
    if ok and err is not None:
        # v2.4: MSA-6 and ERR-1 (seg^seq^field^code&text&HL70357)
        msa6 = msa[6] if len(msa) > 6 else ""
        ok = msa6.split("^")[0] == str(err)
        if ok and loc is not None:
            e1 = errs[0][1] if errs and len(errs[0]) > 1 else ""
            parts = e1.split("^")
            ok = "^".join(parts[:len(loc.split("^"))]) == loc
            detail += f" ERR-1 {e1}"
    if ok and msa2 is not None:
        ok = (msa[2] if len(msa) > 2 else "") == msa2
    if ok and text is not None:
        ok = text in (msa[3] if len(msa) > 3 else "")
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failures.append(f"{name}: expected {code} {err or ''} {loc or ''}"
                        f" {msa2 or ''} {text or ''}; got {raw!r}")


def raw_stream(path):
    """Write a byte stream as it is, close the write side, read all."""
    data = open(path, "rb").read()
    s = socket.create_connection((HOST, PORT))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(30)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    frames = [f for f in buf.split(b"\x1c\x0d") if f.strip()]
    return frames


BROKEN = {
    "bad-nhs-checkdigit.hl7": ("AE", 102, "PID^1^3"),
    "missing-nhs-number.hl7": ("AE", 101, "PID^1^3"),
    "lf-terminators.hl7": ("AE", 100, None),
    "missing-msh.hl7": ("AR", 100, "MSH^1"),
    "truncated.hl7": ("AE", 100, None),
    "bad-escape.hl7": ("AE", 102, "NTE^1^3"),
    "wrong-version.hl7": ("AR", 203, "MSH^1^12"),
    "unsupported-message-type.hl7": ("AR", 200, "MSH^1^9"),
    "bad-date.hl7": ("AE", 102, "PID^1^7"),
    "invalid-utf8.hl7": ("AE", 102, "PID^1^5"),
    "oversize-message.hl7": ("AE", 207, None),
}

if PHASE == "requests":
    for f in sorted(os.listdir(os.path.join(HL7, "valid"))):
        check("valid/" + f, send_file(os.path.join(HL7, "valid", f)), "AA")
    for f in sorted(os.listdir(os.path.join(HL7, "broken"))):
        code, err, loc = BROKEN[f]
        raw = send_file(os.path.join(HL7, "broken", f))
        check("broken/" + f, raw, code, err, loc,
              msa2="" if f == "missing-msh.hl7" else None)
    pairs = os.path.join(HL7, "pairs", "duplicate-control-id")
    # on one connection, in numeric order
    cl = hl7.client.MLLPClient(HOST, PORT)
    for f, exp in zip(sorted(os.listdir(pairs)),
                      [("AA",), ("AA",), ("AA",), ("AE", 205, "MSH^1^10")]):
        first = cl.send_message(open(os.path.join(pairs, f), "rb").read())
        check("pairs/" + f, read_ack(cl.socket, first), *exp)
    cl.close()
    mllp = os.path.join(HL7, "mllp")
    expect_frames = {
        "two-frames-back-to-back.mllp": ["AA", "AA"],
        "junk-before-start-block.mllp": ["AA"],
        "no-end-block.mllp": [],
        "restart-mid-frame.mllp": ["AA"],
        "end-block-without-cr.mllp": ["AA"],
    }
    for f, exp in sorted(expect_frames.items()):
        frames = raw_stream(os.path.join(mllp, f))
        got = [parse_ack(fr)[0][1] if parse_ack(fr)[0] else "?"
               for fr in frames]
        ok = got == exp
        print(f"{'ok  ' if ok else 'FAIL'} mllp/{f}: {got}")
        if not ok:
            failures.append(f"mllp/{f}: expected {exp}, got {got}")
elif PHASE == "outcomes":
    f = "rri-i12-referral-accepted-enhanced-mode.hl7"
    check("outcomes/" + f, send_file(os.path.join(HL7, "outcomes", f)),
          "CA", msa2="CN00004540")
elif PHASE == "early-outcome":
    f = "rri-i12-referral-accepted-enhanced-mode.hl7"
    check("outcomes/" + f + " (early)",
          send_file(os.path.join(HL7, "outcomes", f)), "CR", 207,
          text="temporarily unavailable; resend")
else:
    sys.exit(f"unknown phase {PHASE}")

if failures:
    print(f"{len(failures)} mismatches:", file=sys.stderr)
    for x in failures:
        print("  " + x, file=sys.stderr)
    sys.exit(1)
print("all answers as expected")
