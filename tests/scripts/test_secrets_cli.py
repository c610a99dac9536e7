#!/usr/bin/env python3
"""`orchestrator secrets` and `orchestrator resources` as a person uses them:
init and the key file, set from stdin (never argv), list, wrong keys, both key
variables, rotate-key (file and ORCH_MASTER_KEY), tampered ciphertext, rm,
and the handle commands. Prints TAP."""
import base64
import json
import os
import stat

from secrets_common import (DATA, HANDLE, Tap, env_with, main_guard, psql, run)

VALUE = "cli-test-value-0f1e2d3c4b5a"


def fingerprint():
    """What the stored secrets look like, to prove a refused command wrote nothing."""
    return psql("SELECT coalesce(md5(string_agg(name || encode(nonce, 'hex') || "
                "encode(sealed, 'hex') || coalesce(scope, ''), ',' ORDER BY name)), '') "
                "FROM secrets") + psql("SELECT coalesce(string_agg(kcv || version, ','), '') "
                                       "FROM secret_keys")


def main():
    t = Tap()
    key_file = os.path.join(DATA, "master.key")

    r = run(["--help"])
    t.check(r.code == 0 and "secrets" in r.out and "resources" in r.out,
            "the command list names secrets and resources", r)
    r = run(["secrets"])
    t.check(r.code == 2 and "rotate-key" in r.err, "secrets without an action prints usage", r)
    r = run(["secrets", "frobnicate"])
    t.check(r.code == 2 and "unknown action" in r.err, "an unknown action is refused", r)

    # before init
    r = run(["secrets", "set", "EARLY"], stdin=b"early-value-123")
    t.check(r.code == 1 and "secrets init" in r.err, "set before init says to run init", r)
    t.check(psql("SELECT count(*) FROM secrets") == "0", "... and stores nothing")

    # init
    r = run(["secrets", "init"])
    t.check(r.code == 0 and "back it up" in r.out, "init creates the master key", r)
    st = os.stat(key_file)
    t.check(stat.S_IMODE(st.st_mode) == 0o600, "the key file is mode 0600",
            oct(st.st_mode))
    key_text = open(key_file).read()
    t.check(len(key_text.strip()) == 64 and key_text.endswith("\n"),
            "the key file holds 64 hex digits", repr(len(key_text)))
    r = run(["secrets", "init"])
    t.check(r.code == 0 and "already" in r.out and open(key_file).read() == key_text,
            "init again changes nothing", r)

    # set from stdin
    r = run(["secrets", "set", "API_TOKEN"], stdin=(VALUE + "\n").encode())
    t.check(r.code == 0 and f"({len(VALUE)} bytes" in r.out,
            "set reads the value from stdin and drops one trailing newline", r)
    t.check(VALUE not in r.out + r.err, "set never prints the value", r)
    r = run(["secrets", "set", "API_TOKEN"], stdin=b"another-value-99")
    t.check(r.code == 0 and "replaced" in r.out, "set on an existing name replaces the value", r)
    r = run(["secrets", "set", "ARGV_TRY", "argv-secret-value-123"])
    t.check(r.code == 2 and "nothing was stored" in r.err and "argv-secret-value-123" not in r.err,
            "a value on the command line is refused without being echoed", r)
    t.check(psql("SELECT count(*) FROM secrets WHERE name = 'ARGV_TRY'") == "0",
            "... and nothing is stored")
    r = run(["secrets", "set", "EMPTY"], stdin=b"")
    t.check(r.code == 1 and "no value on standard input" in r.err, "empty stdin is refused", r)
    r = run(["secrets", "set", "SHORT"], stdin=b"1234567")
    t.check(r.code == 1 and "8 bytes" in r.err, "a value shorter than 8 bytes is refused", r)
    r = run(["secrets", "set", "NULBYTE"], stdin=b"1234\x005678")
    t.check(r.code == 1 and "NUL" in r.err, "a value with a NUL byte is refused", r)
    r = run(["secrets", "set", "bad name!"], stdin=b"12345678")
    t.check(r.code == 1 and "not allowed" in r.err, "a bad name is refused", r)
    r = run(["secrets", "set", "SCOPED", "--scope", "proj-a"], stdin=b"scoped-value-1234")
    t.check(r.code == 0, "set --scope stores a project-scoped secret", r)

    # list
    r = run(["secrets", "list"])
    t.check(r.code == 0 and "API_TOKEN" in r.out and "proj-a" in r.out and "never" in r.out
            and "another-value-99" not in r.out and "scoped-value" not in r.out,
            "list shows names, scopes and last use, never values", r)
    r = run(["secrets", "list", "--json"])
    try:
        items = {i["name"]: i for i in json.loads(r.out)}
    except ValueError:
        items = {}
    t.check(set(items) == {"API_TOKEN", "SCOPED"} and items["SCOPED"]["scope"] == "proj-a"
            and items["API_TOKEN"]["scope"] is None and "value" not in items["API_TOKEN"],
            "list --json", r)

    # key file permissions
    before = fingerprint()
    os.chmod(key_file, 0o644)
    r = run(["secrets", "set", "PERM"], stdin=b"perm-value-1234")
    t.check(r.code == 1 and "chmod 600" in r.err, "a key file readable by others is refused", r)
    os.chmod(key_file, 0o600)
    t.check(fingerprint() == before, "... and nothing was written")

    # both variables
    r = run(["secrets", "verify"], env=env_with(ORCH_MASTER_KEY="00" * 32,
                                              ORCH_MASTER_KEY_FILE=key_file))
    t.check(r.code != 0 and "both" in r.err, "ORCH_MASTER_KEY with ORCH_MASTER_KEY_FILE is refused",
            r)

    # a wrong key
    wrong = os.path.join(DATA, "wrong.key")
    with open(wrong, "w") as f:
        f.write("ab" * 32 + "\n")
    os.chmod(wrong, 0o600)
    wenv = env_with(ORCH_MASTER_KEY_FILE=wrong)
    r = run(["secrets", "set", "WRONG"], stdin=b"wrong-key-value-1", env=wenv)
    t.check(r.code == 1 and "not the key" in r.err, "set with a wrong key file is refused", r)
    r = run(["secrets", "rotate-key"], env=wenv)
    t.check(r.code == 1 and "not the key" in r.err, "rotate-key with a wrong key is refused", r)
    r = run(["secrets", "verify"], env=wenv)
    t.check(r.code == 1 and "not the key" in r.err, "verify with a wrong key fails", r)
    r = run(["secrets", "init"], env=wenv)
    t.check(r.code == 1, "init with a wrong key fails", r)
    r = run(["serve"], env=wenv)
    t.check(r.code == 1 and "not the key" in r.err, "serve with a wrong key stops at start-up", r)
    os.chmod(key_file, 0o640)
    r = run(["serve"])
    os.chmod(key_file, 0o600)
    t.check(r.code == 1 and "chmod 600" in r.err,
            "serve with a key file open to the group stops at start-up", r)
    t.check(fingerprint() == before and open(wrong).read() == "ab" * 32 + "\n"
            and open(key_file).read() == key_text, "... and nothing was written or replaced")
    r = run(["secrets", "list"], env=env_with(ORCH_MASTER_KEY_FILE=os.path.join(DATA, "none")))
    t.check(r.code == 0, "list needs no key", r)

    r = run(["secrets", "verify"])
    t.check(r.code == 0 and "all 2 secrets decrypt" in r.out, "verify with the right key", r)

    # rotate-key with the key file
    r = run(["secrets", "rotate-key"])
    new_text = open(key_file).read()
    t.check(r.code == 0 and "version 2" in r.out and "2 secrets" in r.out,
            "rotate-key re-encrypts every secret", r)
    t.check(new_text != key_text and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
            and not os.path.exists(key_file + ".new"), "the key file now holds the new key", "")
    t.check(fingerprint() != before, "every ciphertext changed")
    old = os.path.join(DATA, "old.key")
    with open(old, "w") as f:
        f.write(key_text)
    os.chmod(old, 0o600)
    r = run(["secrets", "verify"], env=env_with(ORCH_MASTER_KEY_FILE=old))
    t.check(r.code == 1 and "not the key" in r.err, "the old key opens nothing", r)
    r = run(["secrets", "verify"])
    t.check(r.code == 0, "the new key opens everything", r)

    # rotate-key with ORCH_MASTER_KEY (hex in, base64 for the new key)
    hex_key = new_text.strip()
    r = run(["secrets", "rotate-key"], env=env_with(ORCH_MASTER_KEY=hex_key))
    t.check(r.code == 1 and "give the new key" in r.err,
            "rotate-key with ORCH_MASTER_KEY needs the new key", r)
    new_raw = os.urandom(32)
    new_b64 = base64.b64encode(new_raw).decode()
    r = run(["secrets", "rotate-key", "--new-key-stdin"], stdin=(new_b64 + "\n").encode(),
            env=env_with(ORCH_MASTER_KEY=hex_key))
    t.check(r.code == 0 and "ORCH_MASTER_KEY" in r.out, "rotate-key --new-key-stdin", r)
    t.check(new_b64 not in r.out + r.err, "... and the new key is not printed", r)
    r = run(["secrets", "verify"], env=env_with(ORCH_MASTER_KEY=new_raw.hex().upper()))
    t.check(r.code == 0, "the new key works in hex", r)
    r = run(["secrets", "verify"],
            env=env_with(ORCH_MASTER_KEY=base64.urlsafe_b64encode(new_raw).decode().rstrip("=")))
    t.check(r.code == 0, "... and in URL-safe base64 without padding", r)
    r = run(["secrets", "verify"], env=env_with(ORCH_MASTER_KEY="not-a-key"))
    t.check(r.code == 1 and "64 hex digits" in r.err, "a malformed ORCH_MASTER_KEY says why", r)
    kenv = env_with(ORCH_MASTER_KEY=new_b64)

    # resources
    r = run(["resources", "allocate", "--scope", "proj-a", "--secret", "API_TOKEN", "--kind",
             "git", "--note", "push access"])
    handle = r.out.strip()
    t.check(r.code == 0 and HANDLE.match(handle), "allocate prints a handle", r)
    r = run(["resources", "allocate", "--scope", "proj-b", "--secret", "SCOPED"])
    t.check(r.code == 1 and "reserved for project proj-a" in r.err,
            "a scoped secret cannot be granted to another project", r)
    r = run(["resources", "allocate", "--scope", "proj-a", "--secret", "API_TOKEN", "--env",
             "LD_PRELOAD"])
    t.check(r.code == 1 and "reserved" in r.err, "a reserved variable is refused", r)
    r = run(["resources", "allocate", "--scope", "proj-a", "--secret", "NOPE"])
    t.check(r.code == 1 and "no secret named NOPE" in r.err, "an unknown secret is refused", r)
    r = run(["resources", "allocate", "--secret", "API_TOKEN"])
    t.check(r.code == 2, "allocate without --scope prints usage", r)
    r = run(["resources", "allocate", "--scope", "proj-a", "--secret", "SCOPED", "--env", "DB_PW",
             "--json"])
    try:
        j = json.loads(r.out)
    except ValueError:
        j = {}
    t.check(r.code == 0 and j.get("env") == "DB_PW" and j.get("scope") == "proj-a"
            and HANDLE.match(j.get("handle", "")), "allocate --json", r)
    handle2 = j.get("handle", "")
    r = run(["resources", "list", "--scope", "proj-a"])
    t.check(r.code == 0 and handle in r.out and handle2 in r.out and "API_TOKEN" in r.out,
            "list shows the project's handles", r)
    r = run(["resources", "show", handle])
    t.check(r.code == 0 and "push access" in r.out and "API_TOKEN" in r.out and "live" in r.out
            and "allocate" in r.out, "show gives metadata and the latest events", r)
    r = run(["resources", "show", "res_" + "a" * 26])
    t.check(r.code == 1 and "no handle" in r.err, "show of an unknown handle", r)
    r = run(["resources", "show", "not-a-handle"])
    t.check(r.code == 1 and "not a resource handle" in r.err, "show of a malformed handle", r)

    # rm with live handles
    r = run(["secrets", "rm", "API_TOKEN"])
    t.check(r.code == 1 and handle in r.err and "--revoke-handles" in r.err,
            "rm refuses while live handles use the secret", r)
    r = run(["resources", "revoke", handle, "--reason", "rotated"])
    t.check(r.code == 0 and f"revoked {handle}" in r.out, "revoke", r)
    r = run(["resources", "revoke", handle])
    t.check(r.code == 0 and "already revoked" in r.out, "revoking twice is harmless", r)
    r = run(["resources", "list", "--scope", "proj-a"])
    t.check(handle not in r.out and handle2 in r.out, "a revoked handle leaves the live list", r)
    r = run(["resources", "list", "--scope", "proj-a", "--all"])
    t.check(handle in r.out and "revoked" in r.out, "... and shows with --all", r)
    r = run(["secrets", "rm", "API_TOKEN"])
    t.check(r.code == 0, "rm once its handles are revoked", r)
    r = run(["secrets", "rm", "SCOPED", "--revoke-handles"])
    t.check(r.code == 0 and "revoked its 1 handle" in r.out, "rm --revoke-handles", r)
    r = run(["secrets", "rm", "SCOPED"])
    t.check(r.code == 1 and "no secret named SCOPED" in r.err, "rm of an unknown secret", r)

    # tampered ciphertext
    r = run(["secrets", "set", "TAMPERED"], stdin=b"tamper-me-please", env=kenv)
    r2 = run(["secrets", "set", "INTACT"], stdin=b"leave-me-alone-1", env=kenv)
    t.check(r.code == 0 and r2.code == 0, "set with ORCH_MASTER_KEY", str(r) + str(r2))
    psql("UPDATE secrets SET sealed = set_byte(sealed, 17, get_byte(sealed, 17) # 1) "
         "WHERE name = 'TAMPERED'")
    r = run(["secrets", "verify"], env=kenv)
    t.check(r.code == 1 and "TAMPERED failed its integrity check" in r.err and "1 secret" in r.out,
            "verify names the tampered secret", r)
    before = fingerprint()
    r = run(["secrets", "rotate-key", "--new-key-stdin"], stdin=(os.urandom(32).hex()).encode(),
            env=kenv)
    t.check(r.code == 1 and "TAMPERED" in r.err and fingerprint() == before,
            "rotate-key refuses a tampered secret and changes nothing", r)

    # the audit trail
    r = run(["resources", "audit", "--limit", "100"])
    t.check(r.code == 0 and "allocate" in r.out and "revoke" in r.out and "rotate" in r.out
            and "rm" in r.out and "set" in r.out, "audit lists the events", r)
    r = run(["resources", "audit", "--handle", handle, "--json"])
    try:
        acts = [e["action"] for e in json.loads(r.out)]
    except ValueError:
        acts = []
    t.check(acts == ["allocate", "revoke"],
            "audit --handle --json", r)

    # nothing above printed a value
    everything = "\n".join(x for x in __import__("secrets_common").LOGS)
    t.check(all(v not in everything for v in (VALUE, "another-value-99", "scoped-value-1234",
                                              "tamper-me-please", "leave-me-alone-1")),
            "no command printed a stored value")
    return t.done()


if __name__ == "__main__":
    main_guard(main)
