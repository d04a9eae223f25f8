#!/usr/bin/env python3
"""An independent verifier of Agora's transparency-log proofs, from RFC 9162 alone.

It uses only the standard library (hashlib, json) and none of Agora's code: given the
JSON cases the Rust test writes, it recomputes every inclusion proof (RFC 9162, 2.1.3.2)
and consistency proof (2.1.4.2) and prints "ok" when all hold and every case marked
"bad" fails. Usage: verify.py CASES.json

An inclusion case may give, instead of "root", the "checkpoint" a node serves with its
proofs (GET /api/v1/tlog/entries/N/proof): a C2SP signed note whose text is the log's
origin, its size and its root hash in base64, one per line; the root and the size are
read from it. (Its signatures are not checked here: `agora audit verify` does.)
"""
import base64
import hashlib
import json
import sys


def read_checkpoint(note: str):
    """The size and root hash a C2SP checkpoint states."""
    lines = note.split("\n")
    return int(lines[1]), base64.b64decode(lines[2])


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size, new_size, proof, old_root, new_root):
    if old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        proof = [old_root] + proof
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def main():
    cases = json.load(open(sys.argv[1]))
    checked = 0
    for c in cases:
        h = lambda x: bytes.fromhex(x)
        if c["kind"] == "inclusion":
            size, root = c.get("size"), None
            if "checkpoint" in c:
                size, root = read_checkpoint(c["checkpoint"])
            else:
                root = h(c["root"])
            holds = verify_inclusion(c["index"], size, leaf_hash(c["entry"].encode()),
                                     [h(p) for p in c["proof"]], root)
        else:
            holds = verify_consistency(c["old_size"], c["new_size"], [h(p) for p in c["proof"]],
                                       h(c["old_root"]), h(c["new_root"]))
        if holds != (not c.get("bad", False)):
            print(f"case {c} {'holds' if holds else 'fails'} but should not", file=sys.stderr)
            sys.exit(1)
        checked += 1
    print(f"{checked} cases ok")


if __name__ == "__main__":
    main()
