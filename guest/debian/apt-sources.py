#!/usr/bin/env python3
"""Print this machine's apt sources for one Debian release as one-line sources.list entries.

    apt-sources.py SUITE [FILE...]

Reads /etc/apt/sources.list, /etc/apt/sources.list.d/*.list (one-line format) and
/etc/apt/sources.list.d/*.sources (deb822), or the FILEs given, and keeps the "deb" entries
whose suite is SUITE, SUITE-updates or SUITE-security (other repositories, e.g. third-party
ones whose suite merely contains the release name, are left out). Only the signed-by option
is kept. Exits 1 with a message when no entry is for SUITE itself.
"""
import glob
import os
import sys


def one_line_entries(text):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        words = words[1:]
        opts = {}
        if words and words[0].startswith("["):
            optwords = []
            while words:
                w = words.pop(0)
                optwords.append(w)
                if w.endswith("]"):
                    break
            for o in " ".join(optwords).strip("[] ").split():
                if "=" in o:
                    k, v = o.split("=", 1)
                    opts[k.lower()] = v
        if len(words) < 2:
            continue
        yield words[0], words[1], words[2:], opts.get("signed-by")


def deb822_entries(text):
    for para in text.split("\n\n"):
        fields, key = {}, None
        for line in para.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
                continue
            if ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by")
        if signed_by and "\n" in signed_by:  # an inline key: not representable one-line
            signed_by = None
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield uri, suite, fields.get("components", "").split(), signed_by


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: apt-sources.py SUITE [FILE...]")
    release = sys.argv[1]
    files = sys.argv[2:] or (["/etc/apt/sources.list"]
                             + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
                             + sorted(glob.glob("/etc/apt/sources.list.d/*.sources")))
    wanted = {release, release + "-updates", release + "-security"}
    out, seen, have_main = [], set(), False
    for path in files:
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        parse = deb822_entries if path.endswith(".sources") else one_line_entries
        for uri, suite, comps, signed_by in parse(text):
            if suite not in wanted or "main" not in comps:
                continue
            key = (uri.rstrip("/"), suite)
            if key in seen:
                continue
            seen.add(key)
            have_main |= suite == release
            opt = f"[signed-by={signed_by}] " if signed_by else ""
            out.append(f"deb {opt}{uri} {suite} main")
    if not have_main:
        sys.exit(f"apt-sources.py: no 'deb' source for suite {release} (component main) "
                 f"in {', '.join(files)}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
