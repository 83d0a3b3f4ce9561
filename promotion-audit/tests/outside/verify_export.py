#!/usr/bin/env python3
"""Checks a promotion JSON Lines audit export with nothing but Python's standard library.

For every entry line: the text between '{"entry":' and the last ',"hash":"' is the entry's
stored bytes. An entry of schema 2 ("schema": 2) is RFC 8785 canonical JSON: this script parses
the line and writes the entry again with its own JCS implementation below (ECMAScript number
formatting, UTF-16 key order, JCS string escapes), and hashes what it wrote, so the leaf hash
is recomputed from the entry's content, not copied from the line. A schema-1 entry (written
before JCS, no "schema" member) is hashed as its stored bytes. SHA-256 of a zero byte and the
bytes (the RFC 6962 leaf hash) must be the line's "hash"; "seq" must count from 0; the entry's "prev" must be the previous entry's hash
(64 zeros for the first). The last line's checkpoint (a C2SP signed note: origin, size,
base64 root) must sign the RFC 6962 Merkle tree head of all the leaf hashes. Signatures are
not checked here.

Usage: verify_export.py EXPORT.jsonl. Prints "ok <entries> entries, root <hex>" and exits 0,
or prints "line N: <problem>" and exits 1.
Usage: verify_export.py --jcs < JSON prints the RFC 8785 form of one JSON value (for tests).
"""

import base64
import hashlib
import json
import sys


MAX_SAFE_INTEGER = 2**53 - 1


class NotCanonical(ValueError):
    pass


def jcs_number(x):
    """ECMAScript Number::toString (ECMA-262 7.1.12.1) of a double, as RFC 8785 3.2.2.3 asks.

    Python's repr gives the shortest digits that round-trip, which are the digits ECMAScript
    chooses; only the layout differs, and is redone here."""
    if isinstance(x, bool):
        raise NotCanonical("a boolean is not a number")
    if isinstance(x, int):
        # Digits beyond 2^53 are canonical only as the exact text of a double (a big integral
        # float is written that way); others would be rounded.
        if abs(x) > MAX_SAFE_INTEGER and int(float(x)) != x:
            raise NotCanonical(f"the integer {x} is not exactly a double")
        x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise NotCanonical("NaN and Infinity are not JSON")
    if x == 0:
        return "0"  # -0 too
    sign = "-" if x < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    # The value is the integer D times 10^(exp - len(frac)), so 0.D times 10^n with n below.
    d = (whole + frac).lstrip("0")
    n = len(d) + (int(exp) if exp else 0) - len(frac)
    digits = d.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mark = "+" if e >= 0 else "-"
        head = digits if k == 1 else digits[0] + "." + digits[1:]
        out = f"{head}e{mark}{abs(e)}"
    return sign + out


ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jcs_string(s):
    """RFC 8785 3.2.2.2: the two escapes JSON requires, the short ones for controls that have
    them, lowercase \\u00xx for the other controls, everything else as it is."""
    out = ['"']
    for ch in s:
        if ch in ESCAPES:
            out.append(ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise NotCanonical("a lone surrogate cannot be written as UTF-8")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value):
    """RFC 8785 canonical JSON text of a parsed value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return jcs_number(value)
    if isinstance(value, str):
        return jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        # RFC 8785 3.2.3: by UTF-16 code units (big-endian bytes compare the same way).
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(jcs_string(k) + ":" + jcs(value[k]) for k in keys) + "}"
    raise NotCanonical(f"not a JSON value: {value!r}")


def no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise NotCanonical(f"the member {k!r} appears twice")
        seen[k] = v
    return seen


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_head(leaves):
    """RFC 6962 section 2.1: MTH of the leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(tree_head(leaves[:k]), tree_head(leaves[k:]))


def fail(line, problem):
    print(f"line {line}: {problem}")
    sys.exit(1)


def main(path):
    leaves = []
    checkpoint = None
    prev = "0" * 64
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n")
            if checkpoint is not None:
                fail(number, "a line after the checkpoint")
            try:
                line = json.loads(raw)
            except ValueError as e:
                fail(number, f"not JSON: {e}")
            if "checkpoint" in line:
                checkpoint = (number, line["checkpoint"])
                continue
            start = b'{"entry":'
            end = raw.rfind(b',"hash":"')
            if not raw.startswith(start) or end < 0:
                fail(number, "not an entry line")
            data = raw[len(start):end]
            try:
                entry = json.loads(data, object_pairs_hook=no_duplicates)
            except ValueError as e:
                fail(number, f"the entry is not JSON: {e}")
            if "schema" in entry:
                if entry["schema"] != 2:
                    fail(number, f"unknown entry schema {entry['schema']}")
                try:
                    canonical = jcs(entry).encode("utf-8")
                except NotCanonical as e:
                    fail(number, f"the entry cannot be canonicalized: {e}")
                if canonical != data:
                    fail(number, "the entry is not in RFC 8785 canonical form")
                data = canonical
            digest = leaf_hash(data)
            if digest.hex() != line["hash"]:
                fail(number, f"the entry hashes to {digest.hex()}, the line records {line['hash']}")
            if line["seq"] != len(leaves) or line["entry"]["seq"] != len(leaves):
                fail(number, f"expected entry {len(leaves)}")
            if line["entry"]["prev"] != prev:
                fail(number, "the entry is not chained to the one before")
            prev = digest.hex()
            leaves.append(digest)
    root = tree_head(leaves)
    if checkpoint is not None:
        number, note = checkpoint
        body = note.split("\n")
        size, signed = int(body[1]), base64.b64decode(body[2])
        if size != len(leaves) or signed != root:
            fail(number, f"the checkpoint signs {size} entries with root {signed.hex()}, "
                         f"the file holds {len(leaves)} with root {root.hex()}")
    print(f"ok {len(leaves)} entries, root {root.hex()}")


if __name__ == "__main__":
    if sys.argv[1] == "--jcs":
        sys.stdout.write(jcs(json.loads(sys.stdin.read(), object_pairs_hook=no_duplicates)))
    else:
        main(sys.argv[1])
