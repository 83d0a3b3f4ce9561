#!/usr/bin/env python3
"""Checks a promotion JSON Lines audit export with nothing but Python's standard library.

For every entry line: the text between '{"entry":' and the last ',"hash":"' is the entry's
stored bytes; SHA-256 of a zero byte and those bytes (the RFC 6962 leaf hash) must be the
line's "hash"; "seq" must count from 0; the entry's "prev" must be the previous entry's hash
(64 zeros for the first). The last line's checkpoint (a C2SP signed note: origin, size,
base64 root) must sign the RFC 6962 Merkle tree head of all the leaf hashes. Signatures are
not checked here.

Usage: verify_export.py EXPORT.jsonl. Prints "ok <entries> entries, root <hex>" and exits 0,
or prints "line N: <problem>" and exits 1.
"""

import base64
import hashlib
import json
import sys


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
    main(sys.argv[1])
