#!/usr/bin/env python3
"""Write a newc cpio archive of a directory tree, without needing root.

usage: mkcpio.py DIR OUT [nod PATH MODE MAJOR MINOR]...

Every entry is owned by root with mtime 0 (reproducible); extra character device
nodes (e.g. nod dev/console 0600 5 1) are added without creating them on the host.
"""
import os
import stat
import sys


def header(ino, mode, nlink, mtime, size, rmaj, rmin, name):
    fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, rmaj, rmin, len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def pad4(n):
    return (4 - n % 4) % 4


class Writer:
    def __init__(self, f):
        self.f = f
        self.ino = 0

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        self.ino += 1
        bname = name.encode()
        h = header(self.ino, mode, nlink, 0, len(data), rdev[0], rdev[1], bname)
        self.f.write(h + bname + b"\0" + b"\0" * pad4(len(h) + len(bname) + 1))
        self.f.write(data + b"\0" * pad4(len(data)))


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: mkcpio.py DIR OUT [nod PATH MODE MAJOR MINOR]...")
    root, out = sys.argv[1], sys.argv[2]
    extra = sys.argv[3:]
    nodes = []
    while extra:
        if extra[0] != "nod" or len(extra) < 5:
            sys.exit("mkcpio.py: bad extra entry %r" % extra[:5])
        nodes.append((extra[1].strip("/"), int(extra[2], 8), int(extra[3]), int(extra[4])))
        extra = extra[5:]

    with open(out, "wb") as f:
        w = Writer(f)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            if rel != ".":
                st = os.lstat(dirpath)
                w.entry(rel, stat.S_IFDIR | (st.st_mode & 0o7777), nlink=2)
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                p = os.path.join(dirpath, name)
                r = os.path.normpath(os.path.join(rel, name))
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    w.entry(r, stat.S_IFLNK | 0o777, os.readlink(p).encode())
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as src:
                        w.entry(r, stat.S_IFREG | (st.st_mode & 0o7777), src.read())
                else:
                    sys.exit("mkcpio.py: %s: unsupported file type" % p)
        for path, mode, major, minor in nodes:
            w.entry(path, stat.S_IFCHR | mode, rdev=(major, minor))
        w.entry("TRAILER!!!", 0, nlink=1)


if __name__ == "__main__":
    main()
